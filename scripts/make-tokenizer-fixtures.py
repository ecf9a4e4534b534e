#!/usr/bin/env python3
"""Tokenizer fixtures: two small SentencePiece BPE models with byte fallback, trained here on a generated
corpus, their tokenizer.json (written the way HF's slow->fast converters lay them out), and the ids the
SentencePiece library (Debian's python3-sentencepiece) gives for a list of prompts.

  llama.model     LLaMA-style: identity normalisation, dummy prefix, whitespace kept, digits split
                  (as the tokenizer of EleutherAI/pile-t5 ships); llama.tokenizer.json (LlamaConverter layout)
  rules.model     a custom normalisation rule table (a small precompiled character map), extra whitespace
                  removed, user-defined pieces; rules.tokenizer.json (SpmConverter/T5 layout: Precompiled
                  normalizer, Metaspace pre-tokenizer)
  expected.json   {model: {prompt: ids}} from sentencepiece's encode (no BOS/EOS)

Run: apt-get install -y python3-sentencepiece; /usr/bin/python3 scripts/make-tokenizer-fixtures.py
"""
import base64, json, os, random, tempfile
import sentencepiece as spm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'tokenizer')

WORDS = ('a photo of the cat dog sitting on red blue green chair table painting portrait landscape city night '
         'light with and in by at under over tree river mountain sky cloud sunset beautiful detailed high quality '
         'art style watercolor oil digital render of an old young woman man child house car street forest snow '
         'rain water flower garden bird fish horse castle bridge ocean beach boat window door').split()
EXTRA = ['café', 'naïve', 'façade', 'über', 'Straße', 'déjà', 'vu', 'München', 'São', 'Paulo', 'ñandú', 'Ωmega']
PUNCT = [',', '.', '!', '?', ';', ':', '-', '(', ')', '"', "'"]


def corpus(n, seed):
    r = random.Random(seed)
    lines = []
    for _ in range(n):
        k = r.randint(3, 14)
        ws = [r.choice(WORDS) if r.random() > 0.08 else r.choice(EXTRA) for _ in range(k)]
        if r.random() < 0.3:
            ws.insert(r.randint(0, len(ws)), str(r.randint(0, 99999)))
        s = ' '.join(ws)
        if r.random() < 0.5:
            s += r.choice(PUNCT)
        if r.random() < 0.2:
            s = s[0].upper() + s[1:]
        lines.append(s)
    return lines


PROMPTS = [
    '',
    'a photo of a cat',
    'A beautiful watercolor painting of a castle by the river, at sunset.',
    'digits 1234567890 and 3.14159!',
    '  leading, trailing  and   repeated   spaces  ',
    'naïve café façade über Straße — “quotes” and ‘apostrophes’',
    'unseen letters: Ж ψ ק ع and CJK 日本語の写真 한국어',
    'emoji 🐱🚀 and symbols © ® ™ ∞ ≈ ≠',
    'tabs\tand\nnewlines',
    'ＦＵＬＬ　ｗｉｄｔｈ ﬁne ﬂowers',
    'special <extra_id_0> and [MASK] pieces',
    'rare ℌ𝔢𝔩𝔩𝔬 and combining é (e + U+0301)',
    'x' * 40,
    'watermark, jpeg, sketch, artifects',
]

# a small custom normalisation table (hex code points, tab, replacement): full-width letters, ligatures,
# the ideographic space, and a two-character rule
RULES = [('FF26', '46'), ('FF35', '55'), ('FF2C', '4C'), ('FF57', '77'), ('FF49', '69'), ('FF44', '64'), ('FF54', '74'),
         ('FF48', '68'), ('FB01', '66 69'), ('FB02', '66 6C'), ('3000', '20'), ('2014', '2D 2D'), ('201C', '22'), ('201D', '22')]


def train(name, lines, **kw):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'corpus.txt')
        with open(path, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        if 'normalization_rule_tsv' in kw:
            tsv = os.path.join(d, 'rules.tsv')
            with open(tsv, 'w') as f:
                f.write(''.join(f'{a}\t{b}\n' for a, b in kw['normalization_rule_tsv']))
            kw['normalization_rule_tsv'] = tsv
        prefix = os.path.join(d, name)
        spm.SentencePieceTrainer.train(input=path, model_prefix=prefix, model_type='bpe', byte_fallback=True,
                                       unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
                                       input_sentence_size=0, shuffle_input_sentence=False, **kw)
        with open(prefix + '.model', 'rb') as f:
            data = f.read()
    with open(os.path.join(OUT, name + '.model'), 'wb') as f:
        f.write(data)
    return spm.SentencePieceProcessor(model_proto=data)


def merges_of(sp):
    """HF's SentencePieceExtractor: every split of a piece into two pieces of the vocabulary, ordered by the
    merged piece's score (then by the ids of the two halves)."""
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    out = []
    for piece, i in sorted(vocab.items(), key=lambda kv: -sp.get_score(kv[1])):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        local = [(piece[:k], piece[k:], sp.get_score(i)) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        out.extend(sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]])))
    out.sort(key=lambda m: -m[2])
    return [[a, b] for a, b, _ in out], vocab


def added_tokens(sp):
    return [{'id': i, 'content': sp.id_to_piece(i), 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True}
            for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)]


def llama_style_json(sp):
    merges, vocab = merges_of(sp)
    model = {'type': 'BPE', 'dropout': None, 'unk_token': '<unk>', 'continuing_subword_prefix': None, 'end_of_word_suffix': None,
             'fuse_unk': True, 'byte_fallback': True, 'vocab': vocab, 'merges': merges}
    normalizer = {'type': 'Sequence', 'normalizers': [{'type': 'Prepend', 'prepend': '\u2581'}, {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '\u2581'}]}
    pre = None
    return {'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added_tokens(sp), 'normalizer': normalizer,
            'pre_tokenizer': pre, 'post_processor': {'type': 'TemplateProcessing', 'single': [{'Sequence': {'id': 'A', 'type_id': 0}}, {'SpecialToken': {'id': '</s>', 'type_id': 0}}],
                                                     'pair': [], 'special_tokens': {'</s>': {'id': '</s>', 'ids': [2], 'tokens': ['</s>']}}},
            'decoder': None, 'model': model}


def charsmap_of(model_bytes):
    """normalizer_spec.precompiled_charsmap, read from the protobuf by hand (Debian's sentencepiece ships its
    _pb2 module without python3-protobuf)."""
    def fields(b):
        p = 0
        while p < len(b):
            tag, p = varint(b, p)
            num, wire = tag >> 3, tag & 7
            if wire == 0:
                v, p = varint(b, p)
                yield num, v
            elif wire == 2:
                n, p = varint(b, p)
                yield num, b[p:p + n]
                p += n
            elif wire == 5:
                yield num, b[p:p + 4]
                p += 4
            elif wire == 1:
                yield num, b[p:p + 8]
                p += 8

    def varint(b, p):
        v = s = 0
        while True:
            c = b[p]
            p += 1
            v |= (c & 0x7F) << s
            s += 7
            if not c & 0x80:
                return v, p
    for num, v in fields(model_bytes):
        if num == 3:
            for n2, v2 in fields(v):
                if n2 == 2:
                    return bytes(v2)
    return b''


def t5_style_json(sp, model_bytes):
    merges, vocab = merges_of(sp)
    cmap = charsmap_of(model_bytes)
    normalizer = {'type': 'Sequence', 'normalizers': [
        {'type': 'Precompiled', 'precompiled_charsmap': base64.b64encode(cmap).decode()},
        {'type': 'Strip', 'strip_left': False, 'strip_right': True},
        {'type': 'Replace', 'pattern': {'Regex': ' {2,}'}, 'content': '\u2581'}]}
    pre = {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True}
    model = {'type': 'BPE', 'dropout': None, 'unk_token': '<unk>', 'continuing_subword_prefix': None, 'end_of_word_suffix': None,
             'fuse_unk': True, 'byte_fallback': True, 'vocab': vocab, 'merges': merges}
    added = added_tokens(sp) + [{'id': sp.piece_to_id(p), 'content': p, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': False}
                                for p in ('<extra_id_0>', '[MASK]')]
    return {'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added, 'normalizer': normalizer,
            'pre_tokenizer': pre, 'post_processor': None, 'decoder': None, 'model': model}


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = corpus(3000, 0)
    llama = train('llama', lines, vocab_size=400, normalization_rule_name='identity', add_dummy_prefix=True,
                  remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.999)
    rules = train('rules', lines + ['ＦＵＬＬ ｗｉｄｔｈ ﬁne ﬂowers — “quoted”'] * 5, vocab_size=420, normalization_rule_tsv=RULES,
                  add_dummy_prefix=True, remove_extra_whitespaces=True, user_defined_symbols=['<extra_id_0>', '[MASK]'], character_coverage=0.999)
    expected = {}
    for name, sp in (('llama', llama), ('rules', rules)):
        expected[name] = {'ids': [sp.encode(p) for p in PROMPTS]}
    with open(os.path.join(OUT, 'llama.model'), 'rb') as f:
        llama_bytes = f.read()
    with open(os.path.join(OUT, 'rules.model'), 'rb') as f:
        rules_bytes = f.read()
    with open(os.path.join(OUT, 'llama.tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(llama_style_json(llama), f, ensure_ascii=False)
    with open(os.path.join(OUT, 'rules.tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(t5_style_json(rules, rules_bytes), f, ensure_ascii=False)
    with open(os.path.join(OUT, 'expected.json'), 'w', encoding='utf-8') as f:
        json.dump({'sentencepiece_version': spm.__version__, 'prompts': PROMPTS, **expected}, f, ensure_ascii=False, indent=1)
    for name, sp in (('llama', llama), ('rules', rules)):
        print(name, sp.get_piece_size(), 'pieces; e.g.', [sp.id_to_piece(i) for i in sp.encode(PROMPTS[5])])


if __name__ == '__main__':
    main()
