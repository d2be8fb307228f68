"""The receiving half (受信): arrivals become holdings (保有データ), kept encrypted at rest until a
designated handler certifies their deletion or return (消去・返却). It never imports the sending
half; the two meet through `gateway.exchange` and `gateway.state`.
"""
