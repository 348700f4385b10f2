# dozor node: runs first on every boot. Keep it tiny: a bug here cannot be recovered by safe mode.
import gc

gc.collect()
