"""The reference CMRAN's checkpoint keys (Xu et al.'s public code) -> avattn's names."""

from __future__ import annotations

from pathlib import Path

from examples.ave.reference_keys import KeyMap, ReferenceModel, linear_keys, relation_layer_keys

from .config import CMRANConfig

KEYS_FILE = Path(__file__).resolve().parent / "reference_keys.tsv"


def cmran_key_map(cfg: CMRANConfig) -> KeyMap:
    """The reference CMRAN's names: ``v_fc`` the visual pre-projection; ``spatial_channel_att`` AGSCA;
    ``video_encoder`` / ``audio_encoder`` the ITR of the visual / audio stream (the memory of the other
    modality's query); ``audio_decoder`` / ``video_decoder`` the audio / visual branch's CMRA
    (``affine_matrix`` its query projection); ``AVInter`` the AV interaction; ``localize_module`` the
    heads (``classifier`` relevance, ``event_classifier`` category)."""
    e = cfg.d_model
    agsca = "spatial_channel_att"
    out: KeyMap = {
        **linear_keys("visual_proj.0", "v_fc"),
        **linear_keys("visual_attention.channel.audio_proj", f"{agsca}.affine_audio_1"),
        **linear_keys("visual_attention.channel.visual_proj", f"{agsca}.affine_video_1"),
        **linear_keys("visual_attention.channel.squeeze", f"{agsca}.affine_bottleneck"),
        **linear_keys("visual_attention.channel.excite", f"{agsca}.affine_v_c_att"),
        **linear_keys("visual_attention.spatial.visual_proj", f"{agsca}.affine_video_2"),
        **linear_keys("visual_attention.spatial.audio_proj", f"{agsca}.affine_audio_2"),
        **linear_keys("visual_attention.spatial.score", f"{agsca}.affine_v_s_att"),
        **relation_layer_keys("interaction.relation", "AVInter", "video_multihead", e, ffn=False),
        **linear_keys("head.relevance", "localize_module.classifier"),
        **linear_keys("head.classifier", "localize_module.event_classifier"),
    }
    for branch, query, memory in (("audio_relation", "audio", "video"), ("video_relation", "video", "audio")):
        out.update(linear_keys(f"{branch}.query_proj", f"{query}_decoder.affine_matrix"))
        out.update(relation_layer_keys(f"{branch}.relation", f"{query}_decoder.decoder.layers.0", "multihead_attn", e))
        out.update(linear_keys(f"{branch}.itr.proj", f"{memory}_encoder.affine_matrix"))
        for i in range(cfg.itr_layers):
            out.update(relation_layer_keys(f"{branch}.itr.layers.{i}", f"{memory}_encoder.encoder.layers.{i}",
                                           "self_attn", e))
    return out


REFERENCES = {"cmran": ReferenceModel(KEYS_FILE, lambda setting: CMRANConfig(setting=setting), cmran_key_map)}
