package layer

import (
	"errors"
	"io"
)

// ErrTooLarge is returned when an archive decompresses to more bytes than
// ExtractOptions.MaxSize allows.
var ErrTooLarge = errors.New("archive exceeds the extraction size limit")

// boundedReader fails once more than left bytes have been read.
type boundedReader struct {
	r       io.Reader
	left    int64
	limited bool
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if !b.limited {
		return b.r.Read(p)
	}
	if b.left <= 0 {
		// Probe one byte: an archive of exactly the limit is fine.
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
