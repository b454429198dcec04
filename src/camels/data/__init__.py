"""Dataset converters and the data pipeline: raw files -> validated, mixed, decontaminated chats."""
