"""Real LLM teachers: chat backends (OpenAI-compatible servers, local transformers models), the
persistent call cache and cost ledger, the EDIT prompts (CEP / AHP / CCP) and the prompt-driven
teacher that implements :class:`edit.teacher.Teacher`."""
