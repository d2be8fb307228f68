"""People as keys: OpenSSH keys (incl. FIDO2 security keys), SSHSIG signatures and age.
"""
