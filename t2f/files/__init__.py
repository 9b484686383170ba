"""Files and the network: model weights in the hub cache, verified downloads, loading user images,
and writing results atomically.

Imports only the base layer (``t2f.errors``, ``t2f.faces``); every stage and the serving layer may use it.
"""
