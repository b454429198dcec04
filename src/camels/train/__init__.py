"""Supervised finetuning on the chat contract."""
