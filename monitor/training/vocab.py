"""A character vocabulary built from the training text, saved as a standard tokenizer.

Every character is one token (Chinese is written without spaces, and a word
piece vocabulary learned from 100k short reviews would be mostly noise). The
result is a `tokenizers` JSON that `AutoTokenizer.from_pretrained` and the
ONNX server both read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Customers write these; few public reviews do, so they are in the vocabulary by right.
EMOJI = "😡🤬😤😠💢😭😢😂🤣😊😄👍👎🙏❤💔🔥💩🤮🙄😓😰😱🤡🐶🐷👌💰🆘⚠"
MAX_LEN = 128


def build_vocab(texts: Iterable[str], min_count: int = 3, max_size: int = 8000) -> list[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text.lower())
    del counts[" "]
    ascii_chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    chars = [c for c, n in counts.most_common() if n >= min_count]
    vocab = list(SPECIALS)
    seen = set(vocab)
    for c in [*ascii_chars, *EMOJI, *chars]:
        if c not in seen and len(vocab) < max_size:
            seen.add(c)
            vocab.append(c)
    return vocab


def make_tokenizer(vocab: list[str]) -> Tokenizer:
    ids = {tok: i for i, tok in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=4))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), "isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    tok.enable_truncation(MAX_LEN)
    return tok


def save_tokenizer(tok: Tokenizer, out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=MAX_LEN,
    )
    fast.save_pretrained(str(out))
