"""A stand-in for `wandb` on the GPU machine, whose image lacks it and cannot fetch it: the
official code imports it at module level, and the device run times its step with logging off
(`--nowandb`), so nothing here is ever asked to log. benches/device/run puts this folder on
PYTHONPATH only when `import wandb` fails."""


class Histogram:
    def __init__(self, *args, **kwargs):
        pass


def init(*args, **kwargs):
    return None


def log(*args, **kwargs):
    return None


def finish(*args, **kwargs):
    return None


config = {}
