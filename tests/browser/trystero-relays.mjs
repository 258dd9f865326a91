// Prints the relays Trystero 0.25.4 itself picks for app ids, computed by the installed
// package's own code (no socket is opened: only the selection runs). Reads a JSON array of
// [appId, redundancy|null] from stdin; prints a JSON array of URL arrays, one per pair.
// `null` is a page that sets no relayConfig at all.
import {readFileSync} from 'node:fs'
import {getRelays} from '@trystero-p2p/core'
import {defaultRelayUrls} from 'trystero'

const pairs = JSON.parse(readFileSync(0, 'utf8'))
// The call the Nostr strategy makes for a room's config (`init` of @trystero-p2p/nostr).
const relaysOf = ([appId, redundancy]) =>
  getRelays(redundancy === null ? {appId} : {appId, relayConfig: {redundancy}}, defaultRelayUrls, 5, true)
process.stdout.write(JSON.stringify(pairs.map(relaysOf)))
