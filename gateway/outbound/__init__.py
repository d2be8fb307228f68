"""The sending half (送信): intake from the outboxes, the agreement checks, witnessed approval
(立会い), sealing and delivery exactly once. It never imports the receiving half; the two meet
through `gateway.exchange` and `gateway.state`.
"""
