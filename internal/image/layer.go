package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// Magic numbers the layer's first bytes are matched against, as Docker and
// go-containerregistry do: media types are often wrong about compression.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// readLayer streams layer number i of an image into u. It reads the blob as
// the registry serves it (go-containerregistry's reader checks its size and
// digest against the manifest when the blob ends) and decompresses it here
// rather than through layer.Uncompressed, to bound the zstd decoder's memory.
// Every byte of the blob is read, so that the digest check always runs;
// onRead is told of each compressed byte received.
func readLayer(ctx context.Context, u *unpacker, i int, layer v1.Layer, onRead func(n int64)) error {
	rc, err := layer.Compressed()
	if err != nil {
		return fmt.Errorf("layer %d: fetch: %w", i, err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(&countingReader{r: rc, onRead: onRead}, 64<<10)
	magic, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return fmt.Errorf("layer %d: %w", i, err)
	}
	var tarStream io.Reader = br
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("layer %d: gzip: %w", i, err)
		}
		defer zr.Close()
		tarStream = zr
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return fmt.Errorf("layer %d: zstd: %w", i, err)
		}
		defer zr.Close()
		tarStream = zr
	}
	if err := u.apply(ctx, i, tarStream); err != nil {
		return err
	}
	// A decompressor may stop at the end of its stream with bytes of the
	// blob left; the digest is checked when the blob ends.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("layer %d: %w", i, err)
	}
	return nil
}

// countingReader tells onRead how many bytes each Read returned.
type countingReader struct {
	r      io.Reader
	onRead func(n int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.onRead != nil {
		c.onRead(int64(n))
	}
	return n, err
}
