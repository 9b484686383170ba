"""Where PRNet's official files live upstream, with their sha256 (no heavy imports: settings use this)."""

CHECKPOINT_NAME = "256_256_resfcn256_weight"
UPSTREAM_COMMIT = "fc12fe5e1f1462bdea52409b213d0cf1c8cf6c5b"
# The checkpoint's data file is distributed from Google Drive (id from the upstream README);
# its .index and the UV data are in the upstream repository at UPSTREAM_COMMIT.
CHECKPOINT_DATA_URL = (
    "https://drive.usercontent.google.com/download?id=1UoE-XuW1SDLUjZmJPkIZ1MLxvQFgmTFH&export=download&confirm=t"
)
UPSTREAM_DATA_URL = f"https://raw.githubusercontent.com/YadiraF/PRNet/{UPSTREAM_COMMIT}/Data"
CHECKPOINT_DATA_SHA256 = "59d338bf0c21b10be813f17f84042c9d3a5bf318e588855ff2b2c041c25bb91a"
CHECKPOINT_INDEX_SHA256 = "cb88192fcf744b8e26d1ea6a2681cd90f102a2d977ab1bac3026bdf4ce785744"
