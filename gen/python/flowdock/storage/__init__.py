"""Generated from protos/ by tools/gen.py; do not edit."""
