"""Attribution of device time to categories, per window, phase and decode step (pure Python)."""
