// Package image owns runbox's OCI/Docker images: it pulls them from registries
// with go-containerregistry, unpacks them into root directories and keeps those
// in a content-addressed store that environments point boxes at.
//
// # Everything that comes from a registry is hostile
//
// Manifests, configs and layers are treated as an attacker's input:
//
//   - A layer is unpacked entry by entry into one temporary root through an
//     [os.Root], which resolves every path inside that directory and refuses to
//     leave it through "..", absolute symlinks or symlinks that climb out. Names
//     with a ".." element, NUL bytes, more than [maxPathLen] bytes or
//     [maxDepth] elements are refused outright (the pull fails naming the
//     entry), as are hard links to anything but a regular file already inside
//     the root. A path that runs through an absolute symlink (link -> /etc,
//     then link/passwd) is refused by os.Root rather than re-rooted.
//   - Devices and FIFOs are never created (a box has no business with the
//     host's devices); setuid, setgid and sticky bits are dropped, and so are
//     group and other write bits: roots are read-only inside boxes, so those
//     bits could only ever let another host user plant files into an image.
//   - Ownership is not taken from the layer: every file belongs to the store's
//     owner (the process's uid, root in production). Boxes run as unprivileged
//     host uids, see those files as owned by "nobody" and read them with the
//     "other" permission bits, so a file the image made private to its owner
//     stays unreadable in a box.
//   - Every count has a bound: bytes written ([Config.MaxImage]), tar bytes
//     read, entries per layer and per image, layers per image, the config's
//     size, the zstd window. The compressed stream of every layer is read to
//     its end so that go-containerregistry's digest check runs; nothing reaches
//     the store until every layer has been verified.
//   - Layers may not name foreign URLs: blobs come only from the registry
//     that served the manifest.
//
// # Registries
//
// Registries are spoken to over HTTPS, except loopback ones (localhost,
// 127.0.0.0/8, ::1) and the hosts listed in [Config.Insecure], as Docker
// does. go-containerregistry on its own would also try plain HTTP for
// RFC 1918 addresses; a guarding transport refuses that. Credentials come from
// [authn.DefaultKeychain], that is the Docker configuration of the user running
// runbox (~/.docker/config.json or $DOCKER_CONFIG, and its credential
// helpers); without one, pulls are anonymous.
//
// # Layout
//
// Under [Config.Dir] (0711):
//
//	index.json        refs → digest and each image's metadata (written by temp + rename)
//	index.lock        flock: guards index.json and every commit, across processes
//	roots/            (0711) sha256-<hex>/ the root of one image (0755)
//	tmp/              (0700) pulls in progress and removals; emptied by Open
//	tmp.lock          flock: shared while a pull or removal works in tmp/, exclusive to empty it
//	use/              (0700) sha256-<hex>.lock, held shared while a box uses the image
//
// A pull unpacks into tmp/ and renames the finished root into roots/ only
// after its last layer verified, so a failed, cancelled or cut-short pull
// leaves nothing in roots/ and its temporary directory is removed before Pull
// returns.
//
// [authn.DefaultKeychain]: https://pkg.go.dev/github.com/google/go-containerregistry/pkg/authn#DefaultKeychain
package image

// Bounds on what an image may make the store do. Config.MaxImage bounds the
// bytes written; these bound the rest.
const (
	// defaultMaxImage is Config.MaxImage when it is 0.
	defaultMaxImage = 4 << 30

	// maxLayers bounds the layers of one image (Docker's own limit is 127
	// for overlay mounts; an image with more is built to hurt).
	maxLayers = 128

	// maxLayerEntries and maxImageEntries bound the tar entries of one layer
	// and of all layers of an image: each entry costs an inode and syscalls
	// even when it holds no bytes.
	maxLayerEntries = 1 << 20
	maxImageEntries = 1 << 22

	// maxPathLen is Linux's PATH_MAX; maxDepth bounds the elements of a
	// name, since every operation in an os.Root opens each of them.
	maxPathLen = 4096
	maxDepth   = 128

	// maxConfigSize bounds the image config blob. go-containerregistry
	// bounds manifests (100 MiB) but reads a config of whatever size the
	// manifest declares.
	maxConfigSize = 8 << 20

	// streamSlack is added to twice MaxImage to bound the tar bytes read
	// (and the compressed bytes declared) for one image: headers, padding
	// and files later replaced are read but not all written.
	streamSlack = 16 << 20

	// maxZstdWindow bounds the memory a zstd layer can make the decoder
	// allocate (the zstd command line's own default limit, 2^27).
	maxZstdWindow = 128 << 20
)

// streamBound is the number of tar bytes (and declared compressed bytes) an
// image may make the store read when it may write maxImage bytes.
func streamBound(maxImage int64) int64 {
	return 2*maxImage + streamSlack
}
