// A minimal protocol-buffers wire-format reader: enough to walk a message's fields (varints, 32/64-bit
// fixed values, length-delimited bytes) without a schema compiler. The SentencePiece model file is read
// with it. Every error names the source and the byte offset.

export type WireValue =
  | { wire: 0; value: bigint }
  | { wire: 1; bytes: Uint8Array }
  | { wire: 2; bytes: Uint8Array }
  | { wire: 5; bytes: Uint8Array };

export interface Field {
  number: number;
  /** Byte offset of the field's tag in the message, for messages. */
  at: number;
  value: WireValue;
}

/** Every field of a message in order (a repeated field appears once per element). */
export function readFields(buf: Uint8Array, where: string): Field[] {
  const out: Field[] = [];
  let p = 0;
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  const varint = (): bigint => {
    let v = 0n, shift = 0n;
    for (;;) {
      if (p >= buf.length) fail(`a varint at byte ${p} runs past the end of the message (${buf.length} bytes): the file is truncated or not this format`);
      const b = buf[p++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
      if (shift > 63n) fail(`a varint at byte ${p} is longer than 10 bytes: the file is corrupt`);
    }
  };
  while (p < buf.length) {
    const at = p;
    const tag = varint();
    const number = Number(tag >> 3n), wire = Number(tag & 7n);
    if (number === 0) fail(`field number 0 at byte ${at}: the file is corrupt or not this format`);
    const take = (n: number): Uint8Array => {
      if (p + n > buf.length) fail(`field ${number} at byte ${at} needs ${n} bytes but the message ends at ${buf.length}: the file is truncated`);
      const b = buf.subarray(p, p + n);
      p += n;
      return b;
    };
    switch (wire) {
      case 0: out.push({ number, at, value: { wire: 0, value: varint() } }); break;
      case 1: out.push({ number, at, value: { wire: 1, bytes: take(8) } }); break;
      case 2: {
        const len = varint();
        if (len > BigInt(buf.length)) fail(`field ${number} at byte ${at} declares ${len} bytes, more than the message holds: the file is corrupt`);
        out.push({ number, at, value: { wire: 2, bytes: take(Number(len)) } });
        break;
      }
      case 5: out.push({ number, at, value: { wire: 5, bytes: take(4) } }); break;
      default: fail(`field ${number} at byte ${at} has wire type ${wire}, which this reader does not handle (groups are obsolete): the file is corrupt or not this format`);
    }
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Typed accessors that name the field when its wire type is wrong. */
export const pb = {
  int(f: Field, where: string): number {
    if (f.value.wire !== 0) throw new Error(`${where}: field ${f.number} should be a varint, has wire type ${f.value.wire}`);
    return Number(BigInt.asIntN(64, f.value.value));
  },
  bool(f: Field, where: string): boolean {
    return pb.int(f, where) !== 0;
  },
  float(f: Field, where: string): number {
    if (f.value.wire !== 5) throw new Error(`${where}: field ${f.number} should be a 32-bit float, has wire type ${f.value.wire}`);
    return new DataView(f.value.bytes.buffer, f.value.bytes.byteOffset, 4).getFloat32(0, true);
  },
  bytes(f: Field, where: string): Uint8Array {
    if (f.value.wire !== 2) throw new Error(`${where}: field ${f.number} should be length-delimited, has wire type ${f.value.wire}`);
    return f.value.bytes;
  },
  string(f: Field, where: string): string {
    try {
      return utf8.decode(pb.bytes(f, where));
    } catch (e) {
      if ((e as Error).message.startsWith(where)) throw e;
      throw new Error(`${where}: field ${f.number} is not valid UTF-8`);
    }
  },
};
