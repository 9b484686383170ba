"""PRNet (Feng et al., ECCV 2018): position-map regression from a 256x256 face crop to a dense 3D face."""
