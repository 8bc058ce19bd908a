"""The attention-cost report: figures per context, growth fits, bounds, findings, renderers."""
