"""Evidence of every step (監査): the recorder that moves events into the ledger, the guard that
refuses events the gateway did not write, and the checkpoint service with its places.
"""
