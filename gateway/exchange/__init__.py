"""What both halves share: the manifest (送付票) format and check, the onward-provision guard
(再提供の禁止), the upload-name rule and the limits sender and recipient must agree on.
"""
