package tuftest

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// GoTUFFetcher is a go-tuf updater Fetcher over a private http.Client:
// go-tuf's default fetcher shares, and its helpers modify,
// http.DefaultClient. Tests that run go-tuf's updater as the reference
// client use it.
type GoTUFFetcher struct{ Client *http.Client }

// DownloadFile implements go-tuf's fetcher.Fetcher.
func (f GoTUFFetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	resp, err := f.Client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: url}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s over %d bytes", url, maxLength)}
	}
	return b, nil
}
