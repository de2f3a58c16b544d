"""Training, one module per job (this file imports nothing):

  rows        - training rows: SFT on CoT records, KRSL on dual pairs with key-token weights, DPO
  batching    - padding to the longest row, the length-grouped order
  trainers    - SFT and KRSL on transformers' Trainer, DPO on TRL's DPOTrainer
  selection   - validation accuracy and the best-epoch checkpoint selection
  checkpoints - processes (rank, world size, global batch), fingerprints, resumable checkpoints
  run         - one method with one seed: its steps on a fresh student, from the data stage's files
"""
