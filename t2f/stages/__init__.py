"""The stages of a face, one module each: text-to-image (``text2img``, with ``taesd`` previews), face
detection (``detect``), PRNet (``prnet/``), and the ``pipeline`` that chains detection and PRNet.

Each stage is a class with ``from_pretrained`` and typed data in and out (``t2f.faces``). Stages use
``t2f.files`` and the base layer, never ``t2f.export`` or ``t2f.serve``. A new stage goes here.
"""
