"""Pieces shared by FRTM and LWL: backbones, target-model optimisers, sample memory, refinement network, merging."""
