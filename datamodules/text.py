"""Sentences -> fixed-length token ids: TVDB's text pre-processing, and the vocabulary saved with a run.

TVDB (Shen's thesis, section 4.3.2) pre-processes every sentence "in the conventional manner": full stops
removed, an ``<eos>`` token appended, padded or truncated to 12 tokens (about the mean caption length), each
token mapped to an id of a vocabulary built from the training sentences. This module does exactly that, in
small pure functions:

* :func:`tokenize`: lower-case, full stops removed, words (letters, digits, inner apostrophes and hyphens) and
  every other punctuation mark as its own token. ``"A man rides a horse."`` -> ``["a", "man", "rides", "a",
  "horse"]``.
* :class:`Vocabulary`: ids ``0 = <pad>``, ``1 = <eos>``, ``2 = <unk>``, then the training words by decreasing
  count (ties alphabetical, so the same sentences always give the same ids). Words seen fewer than
  ``min_count`` times, and words of non-training sentences that are not in it, map to ``<unk>``.
  :meth:`Vocabulary.save` / :meth:`Vocabulary.load` write and read it as JSON; a DataModule writes it beside
  the run's split file (``vocabulary.json``) and re-reads it on resume, so token ids never change within a run.
* :meth:`Vocabulary.encode`: ``length`` ids: the first ``length - 1`` tokens, then ``<eos>``, then ``<pad>``.
  The ``<eos>`` is always kept (a sentence longer than ``length - 1`` tokens loses its tail, not its ``<eos>``),
  the convention of ``datamodules.digits.encode_sentence``; the thesis "trims using the first 12 words" without
  saying whether ``<eos>`` survives. Truncation is counted (:attr:`Vocabulary.last_truncated`), not silent.

An empty sentence (nothing left after removing full stops and spaces) is a ``ValueError`` naming the item:
it has no content to encode and would become a bare ``<eos>``.

>>> vocab = Vocabulary.build(["A dog runs.", "A cat sleeps"])
>>> vocab.tokens[:6]
['<pad>', '<eos>', '<unk>', 'a', 'cat', 'dog']
>>> vocab.encode("a dog sleeps on a bed", length=6).tolist()
[3, 5, 7, 2, 3, 1]
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .files import read_json, write_text_atomic

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)
#: TVDB's sentence length (thesis section 4.3.2 and 4.5.6.2)
DEFAULT_LENGTH = 12
VOCABULARY_FORMAT = "lightning-hash vocabulary v1"

_TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(sentence: str) -> List[str]:
    """Lower-cased tokens of ``sentence`` with every full stop removed.

    Words keep inner apostrophes and hyphens (``"man's"``, ``"t-shirt"``); any other non-space character
    (comma, question mark, ...) is a token of its own.

    >>> tokenize("Two dogs, one ball. ")
    ['two', 'dogs', ',', 'one', 'ball']
    """
    if not isinstance(sentence, str):
        raise ValueError(f"a sentence must be a string, got {type(sentence).__name__}: {sentence!r}")
    return _TOKEN.findall(sentence.lower().replace(".", " "))


def check_sentences(sentences: Sequence[str], names: Optional[Sequence[object]] = None) -> List[List[str]]:
    """Tokenize every sentence; raise ``ValueError`` naming the first empty one(s).

    ``names`` (e.g. caption or image ids) are used in the message; default: the positions.
    """
    tokens = [tokenize(s) for s in sentences]
    empty = [i for i, t in enumerate(tokens) if not t]
    if empty:
        label = [names[i] if names is not None else i for i in empty[:5]]
        raise ValueError(f"{len(empty)} empty sentence(s) (nothing left after removing full stops and spaces), "
                         f"e.g. item(s) {label}: {[sentences[i] for i in empty[:3]]!r}. Remove them from the "
                         "captions file or give them text")
    return tokens


class Vocabulary:
    """Token <-> id map for sentences (see the module docstring for the id order and the encoding rule).

    Parameters
    ----------
    tokens: every token, id = position; must start with ``<pad>``, ``<eos>``, ``<unk>``.
    counts: training counts of the tokens (0 for the special tokens), kept for the record.
    length: default encoded length.
    min_count: the ``min_count`` the vocabulary was built with (for the record).
    """

    def __init__(self, tokens: Sequence[str], counts: Optional[Sequence[int]] = None, length: int = DEFAULT_LENGTH,
                 min_count: int = 1) -> None:
        tokens = list(tokens)
        if tuple(tokens[:3]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with {list(SPECIAL_TOKENS)}, got {tokens[:3]}")
        if len(set(tokens)) != len(tokens):
            dup = sorted(t for t, c in Counter(tokens).items() if c > 1)
            raise ValueError(f"vocabulary lists tokens more than once: {dup[:10]}")
        if int(length) < 2:
            raise ValueError(f"length must be at least 2 (one token and <eos>), got {length}")
        self.tokens = tokens
        self.counts = [0] * len(tokens) if counts is None else [int(c) for c in counts]
        if len(self.counts) != len(tokens):
            raise ValueError(f"counts has {len(self.counts)} entries for {len(tokens)} tokens")
        self.length = int(length)
        self.min_count = int(min_count)
        self.index: Dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.last_truncated = 0
        self.last_unknown = 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1, max_size: Optional[int] = None,
              length: int = DEFAULT_LENGTH) -> "Vocabulary":
        """A vocabulary of the words of ``sentences`` (the training captions).

        ``min_count``: words seen fewer times become ``<unk>``; ``max_size``: keep at most that many words (the
        most frequent; the special tokens come on top).
        """
        if int(min_count) < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        sentences = list(sentences)
        counter: Counter = Counter()
        for tokens in check_sentences(sentences):
            counter.update(tokens)
        for special in SPECIAL_TOKENS:
            if special in counter:
                raise ValueError(f"the sentences contain the reserved token {special!r}")
        words = sorted((w for w, c in counter.items() if c >= min_count), key=lambda w: (-counter[w], w))
        if max_size is not None:
            if int(max_size) < 1:
                raise ValueError(f"max_size must be a positive integer or None, got {max_size}")
            words = words[:int(max_size)]
        return cls(list(SPECIAL_TOKENS) + words, [0, 0, 0] + [counter[w] for w in words], length=length,
                   min_count=min_count)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens and self.length == other.length

    # ------------------------------------------------------------------ encoding
    def ids(self, tokens: Sequence[str]) -> List[int]:
        """Token ids, ``<unk>`` for tokens not in the vocabulary."""
        unk = self.index[UNK]
        return [self.index.get(t, unk) for t in tokens]

    def encode(self, sentence: str, length: Optional[int] = None) -> np.ndarray:
        """``int64 [length]``: the ids of the first ``length - 1`` tokens, ``<eos>``, then ``<pad>`` (0)."""
        return self.encode_many([sentence], length=length)[0]

    def encode_many(self, sentences: Sequence[str], length: Optional[int] = None,
                    names: Optional[Sequence[object]] = None) -> np.ndarray:
        """``int64 [n, length]`` token ids; records how many sentences were truncated and unknown tokens seen.

        Raises ``ValueError`` naming empty sentences (``names`` label them in the message).
        """
        length = self.length if length is None else int(length)
        if length < 2:
            raise ValueError(f"length must be at least 2 (one token and <eos>), got {length}")
        out = np.zeros((len(sentences), length), dtype=np.int64)
        truncated = unknown = 0
        unk = self.index[UNK]
        for i, tokens in enumerate(check_sentences(list(sentences), names)):
            ids = self.ids(tokens)
            unknown += sum(1 for t in ids if t == unk)
            if len(ids) > length - 1:
                truncated += 1
                ids = ids[:length - 1]
            ids.append(self.index[EOS])
            out[i, :len(ids)] = ids
        self.last_truncated, self.last_unknown = truncated, unknown
        return out

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Tokens of an id sequence up to (without) ``<eos>``; padding dropped."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} outside the vocabulary [0, {len(self.tokens)})")
            if self.tokens[i] == EOS:
                break
            if self.tokens[i] != PAD:
                out.append(self.tokens[i])
        return out

    # ------------------------------------------------------------------ file form
    def to_dict(self) -> Dict[str, object]:
        """A JSON-ready dict (the file form)."""
        return {"format": VOCABULARY_FORMAT, "length": self.length, "min_count": self.min_count,
                "size": len(self.tokens), "tokens": self.tokens, "counts": self.counts}

    @classmethod
    def from_dict(cls, content: Dict[str, object], source: str = "<dict>") -> "Vocabulary":
        """Rebuild from :meth:`to_dict`'s output; ``ValueError`` naming ``source`` otherwise."""
        if not isinstance(content, dict) or content.get("format") != VOCABULARY_FORMAT or "tokens" not in content:
            raise ValueError(f"{source}: not a lightning-hash vocabulary (expected JSON with \"format\": "
                             f"\"{VOCABULARY_FORMAT}\" and \"tokens\")")
        return cls(content["tokens"], content.get("counts"), length=int(content.get("length", DEFAULT_LENGTH)),
                   min_count=int(content.get("min_count", 1)))

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the vocabulary as JSON (atomically)."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`."""
        return cls.from_dict(read_json(path, "vocabulary file"), source=str(path))

