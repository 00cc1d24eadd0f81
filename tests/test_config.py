"""Typed configuration: layering (YAML < env < CLI) and rejections that name the field."""

import subprocess

import pytest

from clear_ray.config import ConfigError, RemoveJobConfig, config_fingerprint, load_config

BASE = {"src": "in", "dst": "out"}


def _problems(overrides=None, env=None, yaml_path=None):
    with pytest.raises(ConfigError) as caught:
        load_config(RemoveJobConfig, overrides={**BASE, **(overrides or {})}, env=env or {}, yaml_path=yaml_path)
    return caught.value.problems


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"chunking.chunk_size": 80}, "chunking.chunk_size", "4n+1"),
        ({"chunking.chunk_size": 3}, "chunking.chunk_size", "greater than or equal to 5"),
        ({"chunking.chunk_size": 21, "chunking.overlap": 21}, "chunking.overlap", "< chunk_size (21)"),
        ({"chunking.overlap": -1}, "chunking.overlap", "greater than or equal to 0"),
        ({"remover.clear.lora_scale": 2.5}, "remover.clear.lora_scale", "less than or equal to 2"),
        ({"remover.clear.lora_scale": -0.1}, "remover.clear.lora_scale", "greater than or equal to 0"),
        ({"remover.clear.steps": 0}, "remover.clear.steps", "greater than or equal to 1"),
        ({"remover.backend": "magic"}, "remover.backend", "'auto', 'clear', 'lite' or 'identity'"),
        ({"output.crf": 60}, "output.crf", "less than or equal to 51"),
        ({"output.preset": "warp"}, "output.preset", "medium"),
        ({"ray.min_actors": 4, "ray.max_actors": 2}, "ray.max_actors", ">= min_actors (4)"),
        ({"max_attempts": 0}, "max_attempts", "greater than or equal to 1"),
        ({"chunking.blend": "zigzag"}, "chunking.blend", "cosine"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(overrides, field, fragment):
    problems = _problems(overrides)
    assert any(p.startswith(f"{field}:") and fragment in p for p in problems), problems


def test_missing_src_and_unknown_key_are_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(RemoveJobConfig, overrides={"dst": "out", "chunking.chunk_sise": 81}, env={})
    assert "src: required" in caught.value.problems
    assert "chunking.chunk_sise: unknown setting" in caught.value.problems


def test_layers_yaml_then_env_then_cli(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("chunking:\n  chunk_size: 41\n  overlap: 8\noutput:\n  crf: 20\nremover:\n  backend: identity\n")
    env = {"CLEAR_RAY_CHUNKING__OVERLAP": "12", "CLEAR_RAY_OUTPUT__CRF": "22", "CLEAR_RAY_UNRELATED": "x",
           "OTHER_CHUNKING__OVERLAP": "1"}
    config = load_config(RemoveJobConfig, yaml_path=path, env=env,
                         overrides={**BASE, "output.crf": 18, "chunking.chunk_size": None})
    assert config.chunking.chunk_size == 41  # YAML (the unset CLI flag did not mask it)
    assert config.chunking.overlap == 12  # env beats YAML
    assert config.output.crf == 18  # CLI beats env
    assert config.remover.resolved_backend() == "identity"


def test_auto_backend_follows_model_dir(tmp_path):
    config = load_config(RemoveJobConfig, overrides=BASE, env={})
    assert config.remover.resolved_backend() == "lite"
    config = load_config(RemoveJobConfig, overrides={**BASE, "remover.clear.model_dir": str(tmp_path)}, env={})
    assert config.remover.resolved_backend() == "clear"


def test_yaml_errors_are_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("chunking: [unclosed\n")
    assert any("not valid YAML" in p for p in _problems(yaml_path=path))
    assert any("does not exist" in p for p in _problems(yaml_path=tmp_path / "missing.yaml"))


def test_env_value_rejected_names_the_field():
    problems = _problems(env={"CLEAR_RAY_CHUNKING__CHUNK_SIZE": "eighty"})
    assert any(p.startswith("chunking.chunk_size:") for p in problems)


def test_secrets_never_printed_and_not_in_fingerprint(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("storage:\n  access_key_id: AKIDSECRETVALUE\n  secret_access_key: s3cr3t-value\n")
    result = subprocess.run(["clear-ray", "remove", "in", "out", "--config", str(path), "--print-config"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "s3cr3t-value" not in result.stdout and "AKIDSECRETVALUE" not in result.stdout
    config = load_config(RemoveJobConfig, yaml_path=path, overrides=BASE, env={})
    assert config.storage.s3_storage_options()["secret"] == "s3cr3t-value"
    other = load_config(RemoveJobConfig, yaml_path=path, env={},
                        overrides={**BASE, "storage.secret_access_key": "another-secret"})
    assert config_fingerprint(config) == config_fingerprint(other)  # secret values never hashed
