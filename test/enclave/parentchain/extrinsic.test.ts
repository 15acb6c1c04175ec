// The enclave's own extrinsic decoder (src/enclave/parentchain/extrinsic.ts) on bytes a hostile chain user or host
// can choose: only the closed set of call shapes, canonical encodings, exactly to the end, bounded depth; the signer
// from the bytes; the host's call offset only an upper bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compact } from 'scale-ts';
import {
  addProxyCall,
  batchAllCall,
  proxyCall,
  remarkCall,
  transferKeepAliveCall,
} from '../../../src/enclave/parentchain/calls.ts';
import { MAX_EXTENSION_BYTES, decodeCall, readExtrinsic } from '../../../src/enclave/parentchain/extrinsic.ts';
import { concatBytes } from '../../../src/protocol/bytes.ts';
import { DEV_CALL_INDICES } from '../../helpers/metadata.ts';

const IX = DEV_CALL_INDICES;
const A = new Uint8Array(32).fill(0xaa);
const B = new Uint8Array(32).fill(0xbb);

function signed(call: Uint8Array, o: { version?: number; address?: number; sigKind?: number; ext?: number } = {}) {
  const body = concatBytes(
    Uint8Array.of(o.version ?? 0x84, o.address ?? 0),
    A,
    Uint8Array.of(o.sigKind ?? 1),
    new Uint8Array(o.sigKind === 2 ? 65 : 64).fill(0xee),
    new Uint8Array(o.ext ?? 4),
    call,
  );
  return concatBytes(compact.enc(body.length), body);
}

test('decodeCall: our shapes exactly to the end; anything else is null', () => {
  const t = transferKeepAliveCall(IX, B, 5n);
  assert.deepEqual(decodeCall(IX, t), { kind: 'transferKeepAlive', dest: B, amount: 5n });
  assert.equal(decodeCall(IX, concatBytes(t, Uint8Array.of(0))), null, 'trailing bytes');
  assert.equal(decodeCall(IX, t.subarray(0, t.length - 1)), null, 'truncated');
  assert.equal(decodeCall(IX, Uint8Array.of(40, 0, 0)), null, 'utility.batch is not ours');
  // a non-canonical compact (5 as two bytes) is refused, as the runtime refuses it
  assert.equal(decodeCall(IX, concatBytes(t.subarray(0, 35), Uint8Array.of(0x15, 0x00))), null);
  // proxy with force_proxy_type Some(Any) is read; an invalid Option tag is not
  const inner = remarkCall(IX, Uint8Array.of(1));
  const some = concatBytes(Uint8Array.of(42, 0, 0), A, Uint8Array.of(1, 0), inner);
  assert.equal(decodeCall(IX, some)?.kind, 'proxy');
  assert.equal(decodeCall(IX, concatBytes(Uint8Array.of(42, 0, 0), A, Uint8Array.of(2), inner)), null);
  // the runtime's account formats: bare AccountId32s when the sealed flags say so
  assert.equal(
    decodeCall({ ...IX, proxyRealAccountId: true }, proxyCall({ ...IX, proxyRealAccountId: true }, A, inner))?.kind,
    'proxy',
  );
  assert.equal(decodeCall(IX, proxyCall({ ...IX, proxyRealAccountId: true }, A, inner)), null);
  assert.deepEqual(decodeCall(IX, addProxyCall(IX, B)), { kind: 'addProxy', delegate: B, plain: true });
  // system.remark is not one of the shard's calls (its messages go in remarkWithEvent)
  assert.equal(decodeCall(IX, Uint8Array.of(0, 0, 4, 7)), null);
  // depth: 4 levels are our deepest shape, 5 are refused
  let c = inner;
  for (let i = 0; i < 3; i++) c = batchAllCall(IX, [c]);
  assert.ok(decodeCall(IX, c), 'depth 4');
  assert.equal(decodeCall(IX, batchAllCall(IX, [c])), null, 'depth 5');
  // a count beyond what the bytes could hold is refused without looping
  assert.equal(decodeCall(IX, concatBytes(Uint8Array.of(40, 2), compact.enc(2 ** 30 - 1), inner)), null);
});

test('readExtrinsic: the signer from the bytes; versions, addresses and signatures we do not know are ignored', () => {
  const call = remarkCall(IX, Uint8Array.of(9));
  const x = signed(call);
  const offset = x.length - call.length;
  assert.deepEqual(readExtrinsic(IX, x, offset), { signer: A, call: { kind: 'remark', remark: Uint8Array.of(9) } });
  const ecdsa = signed(call, { sigKind: 2 });
  assert.deepEqual(readExtrinsic(IX, ecdsa, ecdsa.length - call.length), {
    signer: A,
    call: { kind: 'remark', remark: Uint8Array.of(9) },
  });
  assert.match(String(readExtrinsic(IX, signed(call, { sigKind: 3 }), offset)), /signature kind/);
  assert.match(String(readExtrinsic(IX, signed(call, { address: 3 }), offset)), /MultiAddress::Id/);
  assert.match(String(readExtrinsic(IX, signed(call, { version: 0x85 }), offset)), /not v4/);
  assert.match(String(readExtrinsic(IX, concatBytes(Uint8Array.of(0), x.subarray(1)), offset)), /length prefix/);
  const unsigned = concatBytes(compact.enc(call.length + 1), Uint8Array.of(4), call);
  assert.deepEqual(readExtrinsic(IX, unsigned, 2), {
    signer: undefined,
    call: { kind: 'remark', remark: Uint8Array.of(9) },
  });
  // the offset is an upper bound within the extensions' reach: a call past it is not looked for
  const far = signed(call, { ext: MAX_EXTENSION_BYTES + 1 });
  assert.match(String(readExtrinsic(IX, far, far.length - call.length)), /none of the calls/);
});
