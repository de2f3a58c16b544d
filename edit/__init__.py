"""EDIT: mistakE-Driven key reasonIng step distillaTion (ACL 2025), as a small reproducible library.

Modules, in pipeline order:
  params    - params.yaml and its profiles; threads and seeds of a process
  records   - the plain data records shared by every stage (Question, TeacherCoT)
  io        - JSONL/JSON reading and writing with errors naming file and record
  formats   - the student's prompt template (one for training and evaluation)
  tasks     - procedural BBH-format task generators and their step-by-step solvers
  oracle    - the oracle teacher (CEP / AHP / CCP with typed, traceable mistakes)
  teacher   - the teacher interface that real LLM backends implement
  dual      - building D+, D-, D-+, D+- and the dual pairs; the JSONL schema
  align     - minimum-edit-distance key-token alignment (pure functions)
  keysteps  - key tokens of the dual pairs under the student tokenizer; share and localisation
  losses    - the KRSL weighted token loss (pure function)
  student   - the code-built tokenizer and tiny Llama student, LoRA wrapping
  training  - SFT and KRSL on transformers' Trainer
  evaluate  - greedy generation, answer extraction, accuracy
  report    - Table-1-style tables and figures
"""
__version__ = "0.1.0"
