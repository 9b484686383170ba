"""Tiny, randomly initialised model folders built at test time.

Nothing here is committed as weights: every folder is written into a pytest temporary
directory with the installed library versions (see ../shared/docs/diffusion.md, facts 1-5),
then loaded back through the product's real ``from_pretrained`` path.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TOKENIZER_MAX_LENGTH = 77


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins GPT-2/CLIP byte-level BPE uses for raw bytes."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_minimal_clip_tokenizer(folder: Path) -> None:
    """Write a 514-entry CLIP BPE vocabulary with no merges: every string encodes, one token per byte."""
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    # Loading from the raw files works on transformers 4.x and 5.x alike; the limit must be given
    # because raw BPE files carry none and the pipeline pads to it.
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=TOKENIZER_MAX_LENGTH)
    if len(tokenizer) != len(vocab):
        raise RuntimeError(f"tokenizer loaded {len(tokenizer)} of {len(vocab)} vocabulary entries")
    tokenizer.save_pretrained(folder)


def build_tiny_sd_pipeline(folder: Path, *, with_safety_checker: bool = True, force_nsfw: bool = True) -> Path:
    """Save a tiny random Stable Diffusion 1.x pipeline to ``folder`` and return it.

    The layout is the real SD v1-4 layout (unet, vae, text_encoder, tokenizer, scheduler,
    safety_checker, feature_extractor). With ``force_nsfw`` the safety checker flags every image.
    """
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tok_dir = folder.parent / f"{folder.name}-tokenizer"
    write_minimal_clip_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    text_config = dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=max(len(tokenizer), 1000),
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
        projection_dim=32,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    # The scheduler config of the real SD v1-4 repository.
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
    )
    safety_checker = feature_extractor = None
    if with_safety_checker:
        clip_config = CLIPConfig(
            text_config=text_config,
            vision_config=dict(
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                image_size=32,
                patch_size=4,
                projection_dim=32,
            ),
            projection_dim=32,
        )
        safety_checker = StableDiffusionSafetyChecker(clip_config).eval()
        if force_nsfw:
            # Cosine similarity is at most 1, so thresholds of -2 make every concept fire.
            with torch.no_grad():
                safety_checker.concept_embeds_weights.fill_(-2.0)
        feature_extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=safety_checker,
        feature_extractor=feature_extractor,
        requires_safety_checker=with_safety_checker,
    )
    pipe.save_pretrained(folder)
    return folder


def randomised_resfcn256(seed: int) -> torch.nn.Module:
    """PRNet's network with He-scaled random kernels and random BatchNorm statistics.

    PyTorch's default initialisation shrinks activations layer by layer until the sigmoid outputs
    exactly 0.5 everywhere, which would make any comparison of two forward passes pass trivially.
    """
    from t2f.stages.prnet.network import ResFCN256

    generator = torch.Generator().manual_seed(seed)
    network = ResFCN256().eval()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                kernel = module.weight  # Conv2d (out, in, k, k); ConvTranspose2d (in, out, k, k)
                fan_in = kernel[0].numel() if isinstance(module, torch.nn.Conv2d) else kernel[:, 0].numel()
                kernel.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.8, 1.2, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return network
