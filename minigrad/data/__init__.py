"""Training data: token files (tokens), batches of windows (batches), the embedded default
corpus (corpus), byte-level BPE tokenizers that turn text into token files (tokenizer), and
which files a run reads (dataset)."""

from .batches import BatchStream, HostToDevice, Prefetcher, WindowSampler, eval_batches
from .tokens import DataError, TokenFile, open_tokens, split_tail, unigram_entropy, write_tokens

__all__ = ["BatchStream", "HostToDevice", "Prefetcher", "WindowSampler", "eval_batches", "DataError", "TokenFile",
           "open_tokens", "split_tail", "unigram_entropy", "write_tokens"]
