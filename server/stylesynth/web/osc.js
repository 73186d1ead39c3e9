// OSC 1.0 messages as bytes: what the page sends and receives over the OSCQuery WebSocket (binary frames).
// Only what the server speaks: int32 (i), float32 (f), string (s), blob (b), true/false (T/F), and on input also
// int64 (h), double (d) and nil (N).

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function padded(bytes) {
  // OSC strings end with a NUL and are padded with NULs to a multiple of 4 bytes.
  const out = new Uint8Array((Math.floor(bytes.length / 4) + 1) * 4);
  out.set(bytes);
  return out;
}

// encode("/stylesynth/brightness", [["f", 1.5]]) -> ArrayBuffer
export function encode(address, args = []) {
  const parts = [padded(encoder.encode(address)), padded(encoder.encode("," + args.map(([t]) => t).join("")))];
  for (const [type, value] of args) {
    if (type === "i" || type === "f") {
      const word = new DataView(new ArrayBuffer(4));
      if (type === "i") word.setInt32(0, value); else word.setFloat32(0, value);
      parts.push(new Uint8Array(word.buffer));
    } else if (type === "s") {
      parts.push(padded(encoder.encode(String(value))));
    } else if (type !== "T" && type !== "F") {
      throw new Error(`osc.js cannot send type ${type}`);
    }
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) { out.set(p, offset); offset += p.length; }
  return out.buffer;
}

function readString(view, offset) {
  let end = offset;
  while (end < view.byteLength && view.getUint8(end) !== 0) end++;
  const text = decoder.decode(new Uint8Array(view.buffer, view.byteOffset + offset, end - offset));
  return [text, (Math.floor((end - offset) / 4) + 1) * 4 + offset];
}

// decode(ArrayBuffer) -> {address, args} (args as plain JS values); throws on a packet it cannot read.
export function decode(buffer) {
  const view = new DataView(buffer);
  let [address, offset] = readString(view, 0);
  if (!address.startsWith("/")) throw new Error(`not an OSC message: ${address.slice(0, 16)}`);
  if (offset >= view.byteLength) return { address, args: [] };
  let tags;
  [tags, offset] = readString(view, offset);
  const args = [];
  for (const tag of tags.slice(1)) {
    if (tag === "i") { args.push(view.getInt32(offset)); offset += 4; }
    else if (tag === "f") { args.push(view.getFloat32(offset)); offset += 4; }
    else if (tag === "d") { args.push(view.getFloat64(offset)); offset += 8; }
    else if (tag === "h") { args.push(Number(view.getBigInt64(offset))); offset += 8; }
    else if (tag === "s") { let s; [s, offset] = readString(view, offset); args.push(s); }
    else if (tag === "b") {
      const size = view.getInt32(offset);
      args.push(new Uint8Array(view.buffer, view.byteOffset + offset + 4, size));
      offset += 4 + Math.ceil(size / 4) * 4;
    }
    else if (tag === "T") args.push(true);
    else if (tag === "F") args.push(false);
    else if (tag === "N") args.push(null);
    else throw new Error(`unsupported OSC type tag ${tag}`);
  }
  return { address, args };
}
