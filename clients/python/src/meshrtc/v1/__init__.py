"""Stubs generated from proto/meshrtc/v1/meshrtc.proto by tools/gen_stubs.py (do not edit)."""
