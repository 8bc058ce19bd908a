"""How far from the hardware limit: the device table, model facts, achieved bandwidth and FLOP/s."""
