"""EDIT: mistakE-Driven key reasonIng step distillaTion (ACL 2025), as a small reproducible library.

Modules, in pipeline order:
  params     - params.yaml and its profiles; threads and seeds of a process; student paths
  records    - the plain data records shared by every stage (Question, TeacherCoT)
  io         - JSON/JSONL reading and writing with errors naming file and record
  benchmarks - BBH, BB-sub, AGIEval, ARC: pinned sources, verified files, one record, the BBH split
  formats    - the templates of every method: training rows and inference prompt from one place
  tasks      - procedural BBH-format task generators and their step-by-step solvers
  oracle     - the oracle teacher (CEP / AHP / CCP with typed, traceable mistakes)
  teacher    - the teacher interface and the backend factory
  llm        - real teachers: OpenAI-compatible and transformers backends, call cache and ledger,
               the EDIT prompts, the mistake-type judge, a scripted test server
  secrets    - scanning files for API keys
  dual       - building D+, D-, D-+, D+- and the dual pairs; the JSONL schema
  align      - minimum-edit-distance key-token alignment (pure functions)
  keysteps   - key tokens of the dual pairs under the student tokenizer; share and localisation
  losses     - the KRSL weighted token loss (pure functions)
  student    - the code-built tokenizer and tiny Llama student, pretrained students, LoRA
  methods    - methods as configuration: validation, data choices, controls, inference prompts
  training   - SFT, KRSL and DPO on transformers' Trainer; checkpoint selection; length grouping
  launch     - one training run (notebook or `accelerate launch -m edit.launch`); checkpoints, resume
  plan       - dry run of a profile: counts, optimizer steps, teacher calls and cost
  scoring    - answer extraction and scoring per answer type
  generation - batched greedy generation, self-consistency
  evaluate   - evaluation suites, per-sample records, accuracy tables
  report     - the paper's tables, significance tests and figures
"""
__version__ = "0.1.0"
