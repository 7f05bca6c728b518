"""What a guidance benchmark computes with: guidance methods (a registry, one file per method), their
FLOPs, the conditions they run on (class labels or prompts), the flow-matching conventions and the
per-sample random streams."""
