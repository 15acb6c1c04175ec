// LtHash worker thread (inside the enclave boundary): sums the hashes of a packed run of state items.
// Multiset hashes add, so a big replay's commitment is split across cores and the partial sums added.
import { parentPort } from 'node:worker_threads';
import { LtHash } from './lthash.ts';

parentPort!.on('message', (msg: { packed: Uint8Array; ends: Uint32Array }) => {
  const lt = new LtHash();
  let start = 0;
  for (const end of msg.ends) {
    lt.add(msg.packed.subarray(start, end));
    start = end;
  }
  const bytes = lt.bytes();
  parentPort!.postMessage(bytes, [bytes.buffer as ArrayBuffer]);
});
