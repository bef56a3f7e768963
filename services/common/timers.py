"""Periodic work whose period comes from configuration (nameko's timer fixes it at import time)."""
from nameko import config
from nameko.timer import Timer


class ConfiguredTimer(Timer):
    def __init__(self, setting: str, default: float, **kwargs):
        self.setting = setting
        super().__init__(interval=default, **kwargs)

    def setup(self):
        self.interval = float(config.get(self.setting, self.interval))


configured_timer = ConfiguredTimer.decorator
