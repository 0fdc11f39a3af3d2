"""SupraForCausalLM: a Hugging Face causal LM for SUPRA linear-attention RNNs exported by `supra export`.

The same function as supra's C++ model (core/supra/supra_attention.cpp; the method: Mercat et al. 2024, "Linearizing
Large Language Models"). Per block, pre-norm Llama/Mistral: h = x + Attn(RMSNorm(x)), y = h + SwiGLU(RMSNorm(h)).
The attention:
  1. q0, k0, v = x W_q, x W_k, x W_v (pretrained); optional qk-norm: parameter-free LayerNorm (eps 1e-5) on q0, k0
  2. feature maps φ(z) = ReLU(z W + b): one map shared by q and k when H == H_kv, a separate key map under GQA
  3. RoPE (rotate-half) on φ(q), φ(k) at absolute positions; GQA: kv head j serves query heads j·r … j·r+r−1
  4. o_i = Σ_{j≤i} γ_h^{i−j} (q_i · k_j / √d) v_j — decayed causal linear attention, no denominator, fp32
  5. GroupNorm with H groups over the H·d channels (per token, per head), eps 1e-5, no affine, fp32; then W_o
Two forms of step 4: a chunked parallel form (prefill, training, `use_cache=False`) and a recurrent step with a
constant-size state per layer (fp32 [B, H, d, d]) for decoding.

The cache. `SupraCache` holds those states, the number of tokens consumed and, per sequence, the number of real
(unpadded) tokens, from which positions continue. It is not a transformers `Cache` (whose API changes between
versions): the model opts out of transformers' default cache, creates a `SupraCache` on its first forward and
returns it. transformers has named the cache differently over time (`past_key_values` in 4.x and early 5.x,
`cache` from 5.24 on, `cache_params` for recurrent models): `forward` and `prepare_inputs_for_generation` accept it
under any of these names, and the output carries it under the name of the installed version's output classes, so
`generate()` hands it back each step. Once a state exists, `prepare_inputs_for_generation` feeds only the tokens the state has
not consumed (one per decoding step: the per-token cost is constant), with or without `attention_mask`, with
left-padded batches (padding, attention_mask 0, never enters the state and does not advance positions) and with
`use_cache=False` (then each step re-reads the whole sequence, as transformers does for any model).

Loading. `_init_weights` initialises only parameters that the checkpoint did not provide (transformers flags loaded
ones `_is_hf_initialized`): loaded weights are never touched, whatever order a version loads and initialises in.
Verified with transformers 4.57, 5.0 and 5.25 (scripts/tools/hf_version_matrix.py).
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_supra import SupraConfig

# --------------------------------------------------------------------------------------------------------------
# The recurrent cache


class SupraCache:
    """Constant-size decoding state: per layer an fp32 state [B, H, d, d] (None before the first forward), the
    number of positions consumed (`seen_tokens`, padding included: what generate's bookkeeping counts) and, per
    sequence, the number of real tokens consumed (`positions` [B], the next RoPE position). Its size does not depend
    on the sequence length."""

    is_compileable = False
    is_croppable = False

    def __init__(self, num_layers: int):
        self.states: list[torch.Tensor | None] = [None] * num_layers
        self.seen_tokens = 0
        self.positions: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.states)

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return self.seen_tokens

    def get_max_length(self) -> None:
        return None

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return -1

    def nbytes(self) -> int:
        """Bytes held by the states (what a sequence costs, independent of its length)."""
        return sum(s.numel() * s.element_size() for s in self.states if s is not None)

    def _map(self, fn) -> None:
        self.states = [fn(s) if s is not None else None for s in self.states]
        if self.positions is not None:
            self.positions = fn(self.positions)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._map(lambda s: s.index_select(0, beam_idx.to(s.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map(lambda s: s.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map(lambda s: s[indices, ...])

    def reset(self) -> None:
        self.states = [None] * len(self.states)
        self.seen_tokens = 0
        self.positions = None


def _first(*values):
    return next((v for v in values if v is not None), None)


def _usable_cache(cache):
    """A SupraCache, or None for a transformers Cache that is still empty (made by a generate() that ignored the
    model's opt-out); anything else cannot hold a SUPRA state."""
    if cache is None or isinstance(cache, SupraCache):
        return cache
    if hasattr(cache, "get_seq_length") and cache.get_seq_length() == 0:
        return None
    raise ValueError("SupraForCausalLM needs its own SupraCache (model.new_cache() or a previous output's cache), got "
                     + type(cache).__name__)


def _output_class_field(cls) -> str:
    """The name the installed transformers gives the cache in its output classes ('cache' from 5.24+, else
    'past_key_values'); generate() reads it from there."""
    fields = getattr(cls, "__dataclass_fields__", {})
    return "cache" if "cache" in fields else "past_key_values"


# --------------------------------------------------------------------------------------------------------------
# The linear-attention math (fp32)


def supra_linear_attention_chunked(q, k, v, log_gamma, scale, state, chunk_size):
    """Chunked form. q, k, v [B, H, T, d] fp32, log_gamma [H] fp32, state [B, H, d, d] fp32 or None.
    Returns (o [B, H, T, d], final state): the state after the chunk is Σ_j γ^{T−j} s k_jᵀ v_j (+ γ^T state), the
    same the recurrent form stores, so a prefill hands its state to the decoder."""
    B, H, T, d = q.shape
    dv = v.shape[-1]
    S = state if state is not None else q.new_zeros(B, H, d, dv)
    lg = log_gamma.view(H, 1, 1)
    out = []
    for start in range(0, T, chunk_size):
        L = min(chunk_size, T - start)
        qc, kc, vc = q[:, :, start : start + L], k[:, :, start : start + L], v[:, :, start : start + L]
        idx = torch.arange(L, device=q.device, dtype=torch.float32)
        diff = idx.view(L, 1) - idx.view(1, L)  # i − j
        decay = torch.where(diff >= 0, torch.exp(lg * diff.clamp(min=0)), torch.zeros((), device=q.device))  # [H, L, L]
        scores = torch.matmul(qc, kc.transpose(-1, -2)) * scale * decay
        o = torch.matmul(scores, vc)
        o = o + torch.matmul(qc * torch.exp(lg * idx.view(1, L, 1)), S)  # earlier chunks: γ^i q_i S
        out.append(o)
        k_weight = torch.exp(lg * (L - idx).view(1, L, 1)) * scale  # γ^{L−j} s
        S = torch.exp(lg * L) * S + torch.matmul((kc * k_weight).transpose(-1, -2), vc)
    return torch.cat(out, dim=2), S


def supra_linear_attention_step(q, k, v, log_gamma, scale, state):
    """Recurrent form, one token. q, k, v [B, H, d] fp32, state [B, H, d, d] fp32 or None.
    S' = S + s kᵀ v; o = q S'; stored S = γ S'."""
    B, H, d = q.shape
    S = state if state is not None else q.new_zeros(B, H, d, v.shape[-1])
    S = S + scale * k.unsqueeze(-1) * v.unsqueeze(-2)
    o = torch.matmul(q.unsqueeze(-2), S).squeeze(-2)
    return o, torch.exp(log_gamma).view(1, H, 1, 1) * S


# --------------------------------------------------------------------------------------------------------------
# RoPE (as transformers Llama and supra core/model/rope.cpp compute it: fp32 tables, cast to the activations' dtype)


def rope_inv_freq(head_dim: int, rope: dict) -> torch.Tensor:
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    inv_freq = 1.0 / torch.pow(torch.tensor(float(rope["rope_theta"]), dtype=torch.float64).float(), exponents)
    kind = rope.get("rope_type", "default")
    if kind == "linear":
        return inv_freq / float(rope["factor"])
    if kind == "llama3":
        factor = float(rope["factor"])
        low, high = float(rope["low_freq_factor"]), float(rope["high_freq_factor"])
        old_len = float(rope["original_max_position_embeddings"])
        low_freq_wavelen, high_freq_wavelen = old_len / low, old_len / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        return torch.where(is_medium, smoothed, scaled)
    return inv_freq


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


# --------------------------------------------------------------------------------------------------------------
# Modules


class SupraRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class SupraMLP(nn.Module):
    def __init__(self, config: SupraConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SupraAttention(nn.Module):
    def __init__(self, config: SupraConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.qk_norm = config.supra_qk_norm
        self.chunk_size = config.supra_chunk_size
        self.scale = 1.0 / math.sqrt(self.head_dim)
        q_dim, kv_dim = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, q_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, kv_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, kv_dim, bias=False)
        self.o_proj = nn.Linear(q_dim, config.hidden_size, bias=False)
        self.feature_map_q = nn.Linear(q_dim, q_dim, bias=True)
        self.feature_map_k = nn.Linear(kv_dim, kv_dim, bias=True) if config.supra_separate_key_map else None

    def forward(self, x, cos, sin, log_gamma, keep=None, cache: SupraCache | None = None):
        B, T, _ = x.shape
        q0, k0, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.qk_norm:
            q0 = F.layer_norm(q0, (q0.shape[-1],), eps=1e-5)
            k0 = F.layer_norm(k0, (k0.shape[-1],), eps=1e-5)
        key_map = self.feature_map_k if self.feature_map_k is not None else self.feature_map_q
        q = F.relu(self.feature_map_q(q0)).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = F.relu(key_map(k0)).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = cos.to(x.dtype).unsqueeze(1), sin.to(x.dtype).unsqueeze(1)  # [B, 1, T, d]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if keep is not None:  # padding never enters the state
            m = keep.to(k.dtype).view(B, 1, T, 1)
            k, v = k * m, v * m
        r = self.num_heads // self.num_kv_heads
        if r > 1:
            k = k.repeat_interleave(r, dim=1)
            v = v.repeat_interleave(r, dim=1)
        q, k, v = q.float(), k.float(), v.float()
        state = cache.states[self.layer_idx] if cache is not None else None
        if cache is not None and T == 1:
            o, state = supra_linear_attention_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], log_gamma, self.scale, state)
            o = o.unsqueeze(2)
        else:
            o, state = supra_linear_attention_chunked(q, k, v, log_gamma, self.scale, state, self.chunk_size)
        if cache is not None:
            cache.states[self.layer_idx] = state
        # GroupNorm (H groups, no affine) = per token and head: (o − mean) / sqrt(var + 1e-5), fp32
        mean = o.mean(-1, keepdim=True)
        var = (o - mean).pow(2).mean(-1, keepdim=True)
        o = ((o - mean) * torch.rsqrt(var + 1e-5)).to(x.dtype)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim))


class SupraDecoderLayer(nn.Module):
    def __init__(self, config: SupraConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = SupraRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = SupraAttention(config, layer_idx)
        self.post_attention_layernorm = SupraRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SupraMLP(config)

    def forward(self, x, cos, sin, log_gamma, keep=None, cache=None):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, log_gamma, keep, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


def _loaded(t: torch.Tensor | None) -> bool:
    return t is None or bool(getattr(t, "_is_hf_initialized", False))


class SupraPreTrainedModel(PreTrainedModel):
    config_class = SupraConfig
    base_model_prefix = "model"
    _no_split_modules = ["SupraDecoderLayer"]
    _is_stateful = True  # a recurrent state cannot be rolled back: no assisted generation
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module):
        """nn defaults for the parameters a checkpoint did not provide (an exported folder provides them all).
        transformers flags loaded parameters (and fully loaded modules) `_is_hf_initialized`; those are skipped, so
        loaded weights stay exactly as stored whether a version initialises before or after loading."""
        if getattr(module, "_is_hf_initialized", False):
            return
        if isinstance(module, nn.Linear):
            if not _loaded(module.weight):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if not _loaded(module.bias):
                bound = 1.0 / math.sqrt(module.weight.shape[1]) if module.weight.shape[1] > 0 else 0.0
                nn.init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            if not _loaded(module.weight):
                nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, SupraRMSNorm):
            if not _loaded(module.weight):
                nn.init.ones_(module.weight)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # generate() must not create a transformers DynamicCache: the model makes its own SupraCache.
        return False


class SupraModel(SupraPreTrainedModel):
    def __init__(self, config: SupraConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(SupraDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = SupraRMSNorm(config.hidden_size, config.rms_norm_eps)
        self._tables: dict = {}
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def _fixed(self, device: torch.device):
        """fp32 inverse RoPE frequencies and log γ on `device`: computed here, never buffers, so that
        model.to(bfloat16) cannot round them."""
        if device not in self._tables:
            self._tables[device] = (
                rope_inv_freq(self.config.head_dim, self.config.rope_parameters).to(device),
                torch.tensor(self.config.supra_log_gamma, dtype=torch.float32, device=device),
            )
        return self._tables[device]

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                output_hidden_states=False):
        """Returns (normed hidden states [B, T, hidden], all hidden states or None). `attention_mask` [B, ≥T]
        (1 token, 0 padding; its last T columns are this call's); without `position_ids`, positions continue from
        the real tokens each sequence has consumed (left padding does not advance them)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("SupraModel: pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        B, T = x.shape[:2]
        keep = None
        if attention_mask is not None:
            if attention_mask.dim() != 2 or attention_mask.shape[0] != B or attention_mask.shape[1] < T:
                raise ValueError(f"SupraModel: attention_mask must be 2D [batch, >= {T}] (1 = token, 0 = padding), "
                                 f"got shape {tuple(attention_mask.shape)}")
            keep = attention_mask[:, -T:].to(x.device) != 0
            if bool(keep.all()):
                keep = None
        offset = None
        if cache is not None and cache.positions is not None:
            if cache.positions.shape[0] != B:
                raise ValueError(f"SupraModel: the cache holds {cache.positions.shape[0]} sequences, "
                                 f"got a batch of {B}")
            offset = cache.positions.to(x.device)
        if position_ids is None:
            steps = torch.arange(T, device=x.device).unsqueeze(0) if keep is None else keep.long().cumsum(-1) - 1
            position_ids = (steps if offset is None else offset.unsqueeze(-1) + steps).clamp(min=0).expand(B, T)
        inv_freq, log_gamma = self._fixed(x.device)
        freqs = position_ids.to(x.device, torch.float32).unsqueeze(-1) * inv_freq.view(1, 1, -1)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        hidden = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, cos, sin, log_gamma, keep, cache)
            if hidden is not None:
                hidden.append(x)
        if cache is not None:
            cache.seen_tokens += T
            added = torch.full((B,), T, device=x.device, dtype=torch.long) if keep is None else keep.long().sum(-1)
            cache.positions = added if offset is None else offset + added
        x = self.norm(x)
        if hidden is not None:
            hidden[-1] = x
        return x, (tuple(hidden) if hidden is not None else None)


class SupraForCausalLM(SupraPreTrainedModel, GenerationMixin):
    def __init__(self, config: SupraConfig):
        super().__init__(config)
        self.model = SupraModel(config)
        # A tied head reads the embedding itself (no second parameter, no tying machinery).
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def new_cache(self) -> SupraCache:
        return SupraCache(self.config.num_hidden_layers)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        logits_to_keep=0,
        output_hidden_states=None,
        return_dict=None,
        cache=None,
        cache_params=None,
        **kwargs,
    ):
        """The cache may come as `past_key_values`, `cache` or `cache_params` (named in the signature: generate()
        refuses arguments it does not find there); other transformers arguments (`cache_position`,
        `output_attentions`, ...) are accepted and not needed."""
        cache = _usable_cache(_first(past_key_values, cache, cache_params))
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if not use_cache:
            cache = None
        elif cache is None:
            cache = self.new_cache()
        h, hidden = self.model(input_ids, attention_mask, position_ids, cache, inputs_embeds,
                               bool(output_hidden_states))
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            h = h[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            h = h[:, logits_to_keep]
        weight = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(h, weight)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        fields = {"loss": loss, "logits": logits, "hidden_states": hidden,
                  _output_class_field(CausalLMOutputWithPast): cache}
        out = CausalLMOutputWithPast(**fields)
        if return_dict is False:
            return out.to_tuple()
        return out

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, inputs_embeds=None,
                                      cache=None, cache_params=None, **kwargs):
        """What generate() feeds `forward` at each step, for every transformers version's calling convention (the
        cache as `past_key_values`, `cache` or `cache_params`; the new-token count as `next_sequence_length` (5.24+)
        or `cache_position` (4.x, 5.0)). Without a state: the whole sequence (the prompt; every step when
        `use_cache=False`). With one: only the tokens it has not consumed, one per decoding step."""
        cache = _usable_cache(_first(past_key_values, cache, cache_params))
        new_tokens = kwargs.pop("next_sequence_length", None)
        cache_position = kwargs.pop("cache_position", None)
        kwargs.pop("is_first_iteration", None)
        if kwargs.get("use_cache") is False:
            cache = None
        if cache is not None and cache.seen_tokens > 0:
            if new_tokens is None and cache_position is not None:
                new_tokens = cache_position.shape[-1]
            if new_tokens is None and input_ids.shape[1] > cache.seen_tokens:
                new_tokens = input_ids.shape[1] - cache.seen_tokens  # the whole sequence: the rest is new
            if new_tokens is not None:
                input_ids = input_ids[:, input_ids.shape[1] - new_tokens :]
            inputs = {"input_ids": input_ids}
        elif inputs_embeds is not None and (input_ids is None or input_ids.shape[1] == 0):
            inputs = {"input_ids": None, "inputs_embeds": inputs_embeds}  # a prompt given as embeddings: first step
        else:
            inputs = {"input_ids": input_ids}
        fed = inputs["input_ids"] if inputs["input_ids"] is not None else inputs["inputs_embeds"]
        position_ids = kwargs.pop("position_ids", None)
        if position_ids is not None:
            inputs["position_ids"] = position_ids[..., -fed.shape[1] :]
        inputs["past_key_values"] = cache
        inputs["attention_mask"] = attention_mask
        for key in ("labels", "token_type_ids"):
            kwargs.pop(key, None)
        inputs.update({k: v for k, v in kwargs.items() if v is not None})
        return inputs


__all__ = ["SupraCache", "SupraConfig", "SupraForCausalLM", "SupraModel", "SupraPreTrainedModel"]
