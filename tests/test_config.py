from __future__ import annotations

from pathlib import Path

import pytest

from t2f.config import Settings, load_settings, settings_from_mapping, settings_table
from t2f.errors import ConfigError


def test_defaults_match_the_documented_ones(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.model == "CompVis/stable-diffusion-v1-4"
    assert (settings.steps, settings.guidance, settings.image_size) == (25, 7.5, 512)
    assert settings.scheduler == "dpmpp"
    assert settings.safety_checker is True
    assert settings.resolved_device() == "cpu"  # no GPU on the test machine
    assert settings.resolved_dtype() == "float32"


def test_dtype_auto_is_fp16_on_cuda() -> None:
    assert Settings(device="cuda").resolved_dtype() == "float16"
    assert Settings(device="cuda", dtype="bfloat16").resolved_dtype() == "bfloat16"


def test_env_file_is_read_and_real_environment_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("T2F_STEPS=30\nT2F_SCHEDULER=ddim\nT2F_SAFETY_CHECKER=off\n", encoding="utf-8")
    monkeypatch.setenv("T2F_STEPS", "12")
    settings = load_settings()
    assert settings.steps == 12
    assert settings.scheduler == "ddim"
    assert settings.safety_checker is False


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("T2F_STEPS", "abc", "T2F_STEPS='abc' is not a whole number; allowed: 5..50."),
        ("T2F_STEPS", "0", "T2F_STEPS=0 is out of range; allowed: 5..50."),
        # A default every member gets must be a value a member may ask for (the bounds of /face's options).
        ("T2F_STEPS", "100", "T2F_STEPS=100 is out of range; allowed: 5..50."),
        ("T2F_GUIDANCE", "99", "T2F_GUIDANCE=99 is out of range; allowed: 1..15."),
        ("T2F_GUIDANCE", "0.5", "T2F_GUIDANCE=0.5 is out of range; allowed: 1..15."),
        ("T2F_IMAGE_SIZE", "500", "T2F_IMAGE_SIZE=500 is not a multiple of 8; allowed: 64..1024, a multiple of 8."),
        (
            "T2F_SCHEDULER",
            "magic",
            "T2F_SCHEDULER='magic' is not allowed; allowed: dpmpp, pndm, ddim, euler, euler_a, unipc.",
        ),
        ("T2F_DTYPE", "int8", "T2F_DTYPE='int8' is not allowed; allowed: auto, float16, bfloat16, float32."),
        ("T2F_DEVICE", "tpu", "T2F_DEVICE='tpu' is not a device; allowed: auto, cpu, cuda, cuda:N."),
        ("T2F_SAFETY_CHECKER", "maybe", "T2F_SAFETY_CHECKER='maybe' is not a switch; allowed: on, off"),
        ("T2F_DETECTOR", "dlib", "T2F_DETECTOR='dlib' is not allowed; allowed: torch, tensorflow."),
    ],
)
def test_invalid_values_name_the_variable_and_allowed_values(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({variable: value})
    assert caught.value.user_message.startswith(message)


def test_empty_values_keep_defaults_and_cuda_index_is_accepted() -> None:
    settings = settings_from_mapping({"T2F_STEPS": "", "T2F_DEVICE": "cuda:1"})
    assert settings.steps == 25
    assert settings.device == "cuda:1"


def test_table_lists_every_variable_once() -> None:
    table = settings_table()
    for name in (
        "T2F_MODEL",
        "T2F_MODEL_REVISION",
        "T2F_DEVICE",
        "T2F_DTYPE",
        "T2F_STEPS",
        "T2F_GUIDANCE",
        "T2F_IMAGE_SIZE",
        "T2F_SCHEDULER",
        "T2F_SAFETY_CHECKER",
        "T2F_TAESD",
        "T2F_CACHE_DIR",
        "T2F_OUTPUT_DIR",
    ):
        assert table.count(f"`{name}`") == 1


def test_readme_and_env_example_document_every_variable() -> None:
    from t2f.config import env_example

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "README's configuration table is stale: paste `python -m t2f.config`"
    example = (root / ".env.example").read_text(encoding="utf-8")
    assert example == env_example(), "stale: python -m t2f.config --env-example > .env.example"
    assert "\nDISCORD_TOKEN=\n" in example  # the secret stays blank


def test_speedups_are_opt_in_because_they_lose_at_batch_1() -> None:
    # ../shared/docs/gpu-measurements.md: channels-last and fused QKV were slower at batch 1 on an H200.
    assert not Settings(device="cuda").speedup("channels_last") and not Settings(device="cuda").speedup("fuse_qkv")
    assert not Settings(device="cpu").speedup("channels_last")
    assert Settings(device="cpu", fuse_qkv="on").speedup("fuse_qkv")
    assert Settings(device="cuda", channels_last="on").speedup("channels_last")
    assert Settings().compile_mode == "off" and Settings().max_batch == 8  # 8: the measured knee (195 vs 146 faces/min)
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"T2F_FUSE_QKV": "maybe"})
    assert caught.value.user_message == "T2F_FUSE_QKV='maybe' is not allowed; allowed: auto, on, off."


def test_prnet_goes_channels_last_on_cuda_unless_told_otherwise() -> None:
    assert Settings(device="cuda").prnet_channels_last() and not Settings(device="cpu").prnet_channels_last()
    assert not Settings(device="cuda", channels_last="off").prnet_channels_last()
    assert Settings(device="cpu", channels_last="on").prnet_channels_last()


def test_export_threads_one_beside_cpu_painting_else_half_the_cores_up_to_four(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(device="cpu").resolved_export_threads() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert Settings(device="cuda").resolved_export_threads() == 4
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings(device="cuda").resolved_export_threads() == 1
    assert settings_from_mapping({"T2F_EXPORT_THREADS": "3", "T2F_DEVICE": "cpu"}).resolved_export_threads() == 3
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"T2F_EXPORT_THREADS": "-1"})
    assert caught.value.user_message == "T2F_EXPORT_THREADS=-1 is out of range; allowed: 0..32."
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"T2F_EXPORT_THREADS": "many"})
    assert caught.value.user_message == "T2F_EXPORT_THREADS='many' is not a whole number; allowed: 0..32."


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("off", "off"),
        ("default", "default"),
        ("graphs", "graphs"),
        ("GRAPHS ", "graphs"),
        ("on", "default"),
        ("graphs-single", "graphs-single"),
        ("true", "default"),
        ("1", "default"),
        ("false", "off"),
        ("no", "off"),
    ],
)
def test_compile_takes_a_mode_and_the_old_switch_values(raw: str, mode: str) -> None:
    assert settings_from_mapping({"T2F_COMPILE": raw}).compile_mode == mode


def test_compile_refuses_other_values_in_one_sentence() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"T2F_COMPILE": "max"})
    assert (
        caught.value.user_message
        == "T2F_COMPILE='max' is not allowed; allowed: off, default, graphs, graphs-single (on = default)."
    )


def test_guild_ids_take_ascii_digits_only() -> None:
    assert settings_from_mapping({"T2F_GUILD_IDS": " 123, 456 "}).guild_ids == (123, 456)
    for raw in ("²", "12³", "٣٤", str(2**64)):  # str.isdigit() says yes to the first three; int() disagrees
        with pytest.raises(ConfigError) as caught:
            settings_from_mapping({"T2F_GUILD_IDS": raw})
        expected = f"T2F_GUILD_IDS={raw!r} is not a list of ids; allowed: ids, comma-separated."
        assert caught.value.user_message == expected


def test_env_file_that_is_not_utf8_is_one_line(clean_env: Path) -> None:
    (clean_env / ".env").write_bytes(b"DISCORD_TOKEN=abc\nT2F_MODEL=caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.user_message == ".env is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8."


def test_cache_defaults_to_the_hugging_face_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = settings_from_mapping({})
    assert settings.cache_dir is None  # the hub's own cache: an SD v1-4 already there is used, not fetched again
    assert settings.resolved_prnet_dir() == tmp_path / "hf" / "t2f" / "prnet"
    chosen = settings_from_mapping({"T2F_CACHE_DIR": str(tmp_path / "models")})
    assert chosen.resolved_prnet_dir() == tmp_path / "models" / "prnet"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.resolved_prnet_dir() == tmp_path / "xdg" / "huggingface" / "t2f" / "prnet"


def test_log_settings() -> None:
    assert (Settings().log_level, Settings().log_format) == ("", "text")
    settings = settings_from_mapping({"T2F_LOG_LEVEL": "DEBUG", "T2F_LOG_FORMAT": "json"})
    assert (settings.log_level, settings.log_format) == ("debug", "json")
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"T2F_LOG_FORMAT": "xml"})
    assert caught.value.user_message == "T2F_LOG_FORMAT='xml' is not allowed; allowed: text, json."


def test_env_example_sets_nothing_but_the_token() -> None:
    from dotenv import dotenv_values

    root = Path(__file__).resolve().parents[1]
    assert dotenv_values(root / ".env.example") == {"DISCORD_TOKEN": ""}  # every setting is a comment


def test_web_access_settings_are_parsed_and_checked() -> None:
    settings = settings_from_mapping(
        {
            "T2F_WEB_ALLOWED_HOSTS": " Faces.Example.org., [::1], 192.168.1.5 ",
            "T2F_TRUSTED_PROXIES": "10.0.0.1, 172.16.0.0/12, fd00::/8",
        }
    )
    assert settings.web_allowed_hosts == ("faces.example.org", "::1", "192.168.1.5")
    assert settings.trusted_proxies == ("10.0.0.1/32", "172.16.0.0/12", "fd00::/8")
    assert (settings.metrics_port, settings.metrics_host, settings.metrics_token) == (0, "127.0.0.1", "")
    assert (
        settings.to_dict()["metrics_token"] == "" and Settings(metrics_token="x").to_dict()["metrics_token"] == "(set)"
    )
    refused = {
        "T2F_WEB_ALLOWED_HOSTS": (
            "T2F_WEB_ALLOWED_HOSTS='faces.example.org:8080' has 'faces.example.org:8080', which is not a host name; "
            "allowed: host names or addresses without a port, comma-separated (* for any)."
        ),
        "T2F_TRUSTED_PROXIES": (
            "T2F_TRUSTED_PROXIES='10.0.0.0/33' has '10.0.0.0/33', which is not an address or network; "
            "allowed: addresses or CIDR networks, comma-separated."
        ),
    }
    values = {"T2F_WEB_ALLOWED_HOSTS": "faces.example.org:8080", "T2F_TRUSTED_PROXIES": "10.0.0.0/33"}
    for variable, message in refused.items():
        with pytest.raises(ConfigError) as caught:
            settings_from_mapping({variable: values[variable]})
        assert caught.value.user_message == message
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"T2F_WEB_PORT": "8080", "T2F_METRICS_PORT": "8080"})
    assert caught.value.user_message == (
        "T2F_METRICS_PORT=8080 is also T2F_WEB_PORT; give the metrics a port of their own."
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("T2F_STEPS=20\nT2F_GUIDANCE='7\n", ".env line 2 is not NAME=value; check its quotes and its '='."),
        (
            "# settings\nT2F_STEPS=20\n\nT2F_SCHEDULER\n",
            ".env line 4 has no '=': write T2F_SCHEDULER=value, or remove it.",
        ),
    ],
)
def test_an_env_line_that_is_not_name_value_is_refused_by_its_number(clean_env: Path, text: str, message: str) -> None:
    (clean_env / ".env").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.user_message == message


def test_an_unknown_t2f_name_is_a_warning_naming_the_nearest_setting(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from t2f.config import load_environment, setting_names

    (clean_env / ".env").write_text("DISCORD_TOKEN=x\nT2F_STEP=12\nT2F_QUUX=1\nT2F_STEPS=30\n", encoding="utf-8")
    monkeypatch.setenv("T2F_GUIDENCE", "7")
    monkeypatch.setenv("T2F_SHARED_DIR", "/work/shared")  # the tests' own variable, not a typo
    environment = load_environment(".env", known=setting_names())
    assert environment.warnings == (
        ".env line 2: T2F_STEP is not a t2f setting and is ignored; did you mean T2F_STEPS?",
        '.env line 3: T2F_QUUX is not a t2f setting and is ignored; see README, "Configuration".',
        "the environment's T2F_GUIDENCE is not a t2f setting and is ignored; did you mean T2F_GUIDANCE?",
    )
    assert environment.values["T2F_STEPS"] == "30" and environment.values["DISCORD_TOKEN"] == "x"


def test_a_missing_env_file_is_an_error_only_when_named(clean_env: Path) -> None:
    from t2f.config import load_environment

    assert "T2F_STEPS" not in load_environment(".env").values  # the default .env may be absent
    with pytest.raises(ConfigError) as caught:
        load_environment("prod.env", required=True)
    assert caught.value.user_message == "The settings file prod.env does not exist."
    with pytest.raises(ConfigError) as caught:
        load_environment("/dev/zero", required=True)
    assert caught.value.user_message == (
        "The settings file /dev/zero is not a regular file (a device, pipe or socket); give a file."
    )


def test_env_file_may_come_from_process_substitution(clean_env: Path) -> None:
    """`t2f --env-file <(decrypt prod.env)` hands over a pipe: it is read (within the same 1 MiB cap)."""
    import os

    from t2f.config import load_environment

    read_end, write_end = os.pipe()
    os.write(write_end, b"T2F_STEPS=30\n")
    os.close(write_end)
    try:
        assert load_environment(f"/dev/fd/{read_end}", required=True).values["T2F_STEPS"] == "30"
    finally:
        os.close(read_end)
