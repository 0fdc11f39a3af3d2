"""SupraConfig: the Hugging Face configuration of a SUPRA linear-attention RNN exported by `supra export`.

config.json holds the base architecture's fields (Llama/Mistral: sizes, RMSNorm eps, RoPE) plus a "supra" block
written by supra (core/model/config.cpp):
    format_version   1
    base_architecture, base_model_type   the softmax model it was converted from
    decay            "reference" | "retnet" | "none" (how log_gamma was made)
    log_gamma        natural log of the fixed per-query-head decay, fp32 values, one per head
    qk_norm          parameter-free LayerNorm (eps 1e-5) over q0 and k0 before the feature maps
    chunk_size       chunk length of the parallel (prefill) form
    feature_map      "shared_q_k" (H == H_kv) or "separate_q_and_k" (GQA)
    state_shape      [layers, heads, head_dim, head_dim]: the recurrent state per sequence (fp32)
Shipped with supra (scripts/shipped/hf_supra/); loaded with `trust_remote_code=True`.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

_ROPE_TYPES = ("default", "linear", "llama3")


def _normalise_rope(rope_theta: float | None, rope_scaling: dict | None, rope_parameters: dict | None) -> dict:
    """One RoPE dict {rope_type, rope_theta, ...} from the transformers v4 (rope_theta + rope_scaling) or v5
    (rope_parameters) spellings; only the scalings supra reproduces are accepted."""
    theta = 10000.0 if rope_theta is None else float(rope_theta)
    scaling = None
    if isinstance(rope_parameters, dict):
        theta = float(rope_parameters.get("rope_theta", theta))
        scaling = rope_parameters
    if isinstance(rope_scaling, dict):
        scaling = rope_scaling
    out: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind not in _ROPE_TYPES:
            raise ValueError(f"SupraConfig: RoPE type {kind!r} is not supported (supported: {', '.join(_ROPE_TYPES)})")
        out["rope_type"] = kind
        if kind == "linear":
            out["factor"] = float(scaling.get("factor", 1.0))
        elif kind == "llama3":
            out["factor"] = float(scaling.get("factor", 8.0))
            out["low_freq_factor"] = float(scaling.get("low_freq_factor", 1.0))
            out["high_freq_factor"] = float(scaling.get("high_freq_factor", 4.0))
            out["original_max_position_embeddings"] = int(scaling.get("original_max_position_embeddings", 8192))
    return out


class SupraConfig(PretrainedConfig):
    model_type = "supra"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=None,
        head_dim=None,
        hidden_act="silu",
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        use_cache=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        supra=None,
        **kwargs,
    ):
        rope_theta = kwargs.pop("rope_theta", None)
        rope_scaling = kwargs.pop("rope_scaling", None)
        rope_parameters = kwargs.pop("rope_parameters", None)
        if hidden_act != "silu":
            raise ValueError(f"SupraConfig: hidden_act {hidden_act!r} is not supported (only silu)")
        for flag in ("attention_bias", "mlp_bias"):
            if kwargs.get(flag):
                raise ValueError(f"SupraConfig: {flag}=true is not supported")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.head_dim = hidden_size // num_attention_heads if head_dim is None else head_dim
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        rope = _normalise_rope(rope_theta, rope_scaling, rope_parameters)
        self.rope_theta = rope["rope_theta"]
        self.rope_parameters = rope
        self.supra = dict(supra) if supra is not None else self._default_supra()
        self._check_supra()
        super().__init__(
            tie_word_embeddings=tie_word_embeddings,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            **kwargs,
        )
        # Some transformers versions keep tie_word_embeddings only as an init argument; make it an attribute.
        self.tie_word_embeddings = tie_word_embeddings

    # ------------------------------------------------------------------------------------------------ settings
    def _default_supra(self) -> dict:
        """Reference ALiBi decay for a config built in Python without a supra block (tests, from_config)."""
        h = self.num_attention_heads
        c = 1 << (h.bit_length() - 1)
        slopes = [2.0 ** (-8.0 * (i + 1) / c) for i in range(c)]
        if c != h:
            extra = [2.0 ** (-8.0 * (i + 1) / (2 * c)) for i in range(2 * c)]
            slopes += extra[0::2][: h - c]
        return {
            "format_version": 1,
            "decay": "reference",
            "log_gamma": [-s for s in slopes],
            "qk_norm": False,
            "chunk_size": 64,
            "feature_map": "shared_q_k" if h == self.num_key_value_heads else "separate_q_and_k",
            "state_shape": [self.num_hidden_layers, h, self.head_dim, self.head_dim],
            "base_architecture": "LlamaForCausalLM",
            "base_model_type": "llama",
        }

    def _check_supra(self) -> None:
        s = self.supra
        if s.get("format_version") != 1:
            raise ValueError(f"SupraConfig: unsupported supra format_version {s.get('format_version')!r}")
        lg = s.get("log_gamma")
        if not isinstance(lg, list) or len(lg) != self.num_attention_heads:
            raise ValueError("SupraConfig: supra.log_gamma must list one value per attention head")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError("SupraConfig: num_attention_heads must be a multiple of num_key_value_heads")
        separate = self.num_attention_heads != self.num_key_value_heads
        expected = "separate_q_and_k" if separate else "shared_q_k"
        if s.get("feature_map", expected) != expected:
            raise ValueError(f"SupraConfig: feature_map {s.get('feature_map')!r} does not match the head counts")
        if int(s.get("chunk_size", 64)) <= 0:
            raise ValueError("SupraConfig: supra.chunk_size must be positive")

    @property
    def supra_log_gamma(self) -> list[float]:
        return [float(x) for x in self.supra["log_gamma"]]

    @property
    def supra_qk_norm(self) -> bool:
        return bool(self.supra.get("qk_norm", False))

    @property
    def supra_chunk_size(self) -> int:
        return int(self.supra.get("chunk_size", 64))

    @property
    def supra_separate_key_map(self) -> bool:
        return self.num_attention_heads != self.num_key_value_heads
