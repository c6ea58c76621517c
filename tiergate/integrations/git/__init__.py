"""Git integration: a pre-push hook that gates pushes of weights to any git remote (Hugging Face Hub included).

The hook turns a push into one :meth:`tiergate.runtime.Gate.decide` call per pushed tree. Nothing here decides policy:
it builds the model identity of what is being pushed and hands it to the gate.
"""
