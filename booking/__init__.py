"""The asye-training web application and its booking domain."""
