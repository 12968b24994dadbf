"""LLM-driven generators on one engine: stories, dialogues, neutral dialogues, regulation pairs."""
