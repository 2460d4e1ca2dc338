// Package encrypt keeps firmware confidential on its way to the device:
// each release gets a random content key, the image and every patch to it
// are encrypted with it as a stream of authenticated chunks, and the key is
// wrapped with HPKE (RFC 9180) for each recipient, a device group or a
// single device. It imports nothing of otaseal and knows nothing about TUF:
// the signed metadata that carries the wrapped keys is package manifest's.
//
// Entry points:
//
//   - NewWriter encrypts a stream under a ContentKey; NewReader decrypts
//     one, a chunk at a time, with memory bounded by the chunk size.
//   - Wrap seals a ContentKey for a recipient's PublicKey, bound to a
//     target path and version; PrivateKey.Unwrap opens it.
//   - GenerateKey makes a recipient key pair; MarshalPublicKey,
//     ParsePublicKey and their private counterparts read and write them
//     as PEM.
//
// Confidentiality is all it adds. That the image is the publisher's comes
// from the signed hashes of the ciphertext and the plaintext, which the
// caller checks (package verify does); an AEAD only proves that a chunk was
// made by someone holding the content key, and every recipient holds it.
//
// # Key wrapping
//
// The content key (32 bytes) is sealed with HPKE in base mode, single shot:
// KDF HKDF-SHA256, AEAD AES-256-GCM, and one of two KEMs:
//
//	name              KEM ID   public key  wrapped key (enc || sealed)
//	mlkem768-x25519   0x647a   1216 bytes  1120 + 48 = 1168 bytes
//	x25519            0x0020     32 bytes    32 + 48 =   80 bytes
//
// mlkem768-x25519 (X-Wing, draft-ietf-hpke-pq) is the default: it stays
// secret unless both ML-KEM-768 and X25519 fall, so a recording of today's
// downloads is no use to a quantum computer later. x25519 (DHKEM(X25519,
// HKDF-SHA256)) is for devices too small for ML-KEM. The HPKE info string
// binds the wrap to one release:
//
//	"otaseal key wrap v1" || 0x00 || uint16 len(target) || target
//	                             || uint16 len(version) || version
//
// (lengths big-endian), so that a wrapped key copied into another release's
// metadata does not open. A key ID is the lowercase hex SHA-256 of
// "otaseal recipient v1" || 0x00 || uint16 KEM ID || public key bytes: it
// names the KEM as well as the key.
//
// # Stream format, version 1
//
// A fixed header, then the plaintext cut into chunks of C bytes, each
// sealed with the AEAD on its own (age's STREAM construction):
//
//	offset  size  field
//	0       8     magic "OTAENC01" (the last two bytes are the version)
//	8       2     uint16 big-endian: the chunk cipher, as HPKE's AEAD IDs:
//	              0x0002 AES-256-GCM, 0x0003 ChaCha20-Poly1305
//	10      4     uint32 big-endian: C, plaintext bytes per chunk,
//	              MinChunkSize..MaxChunkSize
//	14      32    salt: random, new for every stream
//	46      ...   chunks: each the AEAD ciphertext of its plaintext followed
//	              by a 16-byte tag; every chunk holds C plaintext bytes but
//	              the last, which holds 1..C (0 only when the whole
//	              plaintext is empty, which is then one empty chunk)
//
// The stream key is HKDF-SHA256(secret = content key, salt = salt, info =
// "otaseal stream v1" || 0x00 || header bytes 0..13), 32 bytes: a fresh key
// per stream, so that one content key serves the image and each patch of a
// release without ever reusing a nonce, and a header changed in transit
// (cipher, chunk size) derives another key and fails the first chunk.
// Chunk i (from 0) is sealed with the 12-byte nonce
//
//	bytes 0..10   i as an 88-bit big-endian integer
//	byte  11      0x01 for the last chunk, 0x00 for every other
//
// and no additional data. A ciphertext of P plaintext bytes is therefore
// HeaderSize + P + 16*max(1, ceil(P/C)) bytes long (CiphertextSize).
//
// Because the index and the last-chunk flag are inside the nonce, the
// reader detects a chunk moved, repeated or dropped (it fails to open at
// its new index), a stream cut at a chunk boundary (the last chunk read was
// sealed as not the last: ErrTruncated), bytes appended after the last
// chunk (ErrTrailingData after a full last chunk; after a short one the
// reader cannot tell where the chunk ended, and the chunk fails to open),
// and any flipped bit (a *ChunkError naming the
// chunk). The reader learns where the stream ends only at EOF, so it holds
// one chunk and one byte of look-ahead: about 2*C bytes of memory whatever
// the size of the stream. A decrypted chunk is authentic the moment it is
// returned, but the stream is complete only at io.EOF.
package encrypt
