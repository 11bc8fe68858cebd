package identity

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often a Source checks its files.
const DefaultReloadInterval = time.Second

// SourceConfig names the files of a Source.
type SourceConfig struct {
	// CertFile holds the certificate followed by its chain, KeyFile its
	// key. Both or neither: a Source without them serves only a trust
	// bundle.
	CertFile, KeyFile string
	// CAFile is the trust bundle peers are verified against; empty for
	// none.
	CAFile string
	// Interval is how often the files are checked (DefaultReloadInterval
	// if 0).
	Interval time.Duration
	// Log receives reloads and rejected files; nil discards.
	Log *slog.Logger
}

// Source is a file-backed certificate, key and trust bundle that follows
// its files: Run checks them at an interval and, when their content
// changed, loads them again. A file that is missing, partial, or a
// certificate that does not match its key keeps the last good state in
// service and is logged. A Source is safe for concurrent use; new
// handshakes use the state current when they start, and established
// connections are not touched.
type Source struct {
	cfg SourceConfig
	log *slog.Logger
	cur atomic.Pointer[sourceState]

	mu       sync.Mutex // serializes reloads
	pairHash [sha256.Size]byte
	caHash   [sha256.Size]byte
}

type sourceState struct {
	cert  *tls.Certificate // Leaf set; nil without CertFile
	id    ID               // the certificate's SPIFFE ID, if any
	roots *x509.CertPool   // nil without CAFile
}

// NewSource loads the files once; unlike later reloads, any problem is an
// error.
func NewSource(cfg SourceConfig) (*Source, error) {
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("certificate source: cert_file and key_file go together")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultReloadInterval
	}
	s := &Source{cfg: cfg, log: cfg.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.cur.Store(&sourceState{})
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload checks the files now and loads what changed. It returns the
// problems found; what could not be loaded keeps its last good state.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := *s.cur.Load()
	changed := false
	var errs []error
	if s.cfg.CertFile != "" {
		cdata, cerr := os.ReadFile(s.cfg.CertFile)
		kdata, kerr := os.ReadFile(s.cfg.KeyFile)
		switch {
		case cerr != nil:
			errs = append(errs, fmt.Errorf("reading certificate: %w", cerr))
		case kerr != nil:
			errs = append(errs, fmt.Errorf("reading key: %w", kerr))
		default:
			h := sha256.Sum256(append(append(cdata, 0), kdata...))
			if h != s.pairHash {
				cert, id, err := loadPair(cdata, kdata)
				if err != nil {
					errs = append(errs, fmt.Errorf("loading %s and %s: %w", s.cfg.CertFile, s.cfg.KeyFile, err))
				} else {
					s.pairHash = h
					next.cert, next.id = cert, id
					changed = true
					s.log.Info("certificate loaded", "file", s.cfg.CertFile, "identity", id.String(),
						"serial", cert.Leaf.SerialNumber.Text(16), "not_after", cert.Leaf.NotAfter)
				}
			}
		}
	}
	if s.cfg.CAFile != "" {
		data, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading trust bundle: %w", err))
		} else if h := sha256.Sum256(data); h != s.caHash {
			pool, n, err := loadBundle(data)
			if err != nil {
				errs = append(errs, fmt.Errorf("loading trust bundle %s: %w", s.cfg.CAFile, err))
			} else {
				s.caHash = h
				next.roots = pool
				changed = true
				s.log.Info("trust bundle loaded", "file", s.cfg.CAFile, "certificates", n)
			}
		}
	}
	if changed {
		s.cur.Store(&next)
	}
	return errors.Join(errs...)
}

func loadPair(cdata, kdata []byte) (*tls.Certificate, ID, error) {
	cert, err := tls.X509KeyPair(cdata, kdata)
	if err != nil {
		return nil, ID{}, err
	}
	// Go 1.23+ fills Leaf; keep working if it did not.
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, ID{}, err
		}
	}
	id, err := CertificateID(cert.Leaf)
	if err != nil && !errors.Is(err, ErrNoID) {
		return nil, ID{}, err
	}
	return &cert, id, nil
}

func loadBundle(data []byte) (*x509.CertPool, int, error) {
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, 0, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, len(certs), nil
}

// Run checks the files every interval until ctx ends. A failed check is
// logged once per distinct problem and retried at the next interval.
func (s *Source) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.Reload()
		if err == nil {
			last = ""
			continue
		}
		if msg := err.Error(); msg != last {
			last = msg
			s.log.Warn("certificate files not reloaded; keeping the last good ones", "err", err)
		}
	}
}

// Certificate returns the current certificate (nil without CertFile).
func (s *Source) Certificate() *tls.Certificate { return s.cur.Load().cert }

// ID returns the current certificate's SPIFFE ID (zero if none).
func (s *Source) ID() ID { return s.cur.Load().id }

// Roots returns the current trust bundle (nil without CAFile).
func (s *Source) Roots() *x509.CertPool { return s.cur.Load().roots }

// Name is how the source is named in metrics: its certificate's SPIFFE
// ID, else its certificate file, else its trust bundle file.
func (s *Source) Name() string {
	if id := s.ID(); !id.IsZero() {
		return id.String()
	}
	if s.cfg.CertFile != "" {
		return s.cfg.CertFile
	}
	return s.cfg.CAFile
}

// NotAfter returns the expiry of the current certificate (zero without
// CertFile).
func (s *Source) NotAfter() time.Time {
	if c := s.Certificate(); c != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

var errNoCertificate = errors.New("certificate source has no certificate")

// GetCertificate serves tls.Config.GetCertificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.Certificate(); c != nil {
		return c, nil
	}
	return nil, errNoCertificate
}

// GetClientCertificate serves tls.Config.GetClientCertificate. Without a
// certificate it sends none.
func (s *Source) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := s.Certificate(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

// Verify checks a peer's certificate chain (leaf first, as sent in the
// handshake) against the current trust bundle, for usage (server or
// client authentication), and returns the leaf's SPIFFE ID (zero if it
// has none). Host names are not checked: identities are.
func (s *Source) Verify(rawCerts [][]byte, usage x509.ExtKeyUsage) (ID, error) {
	roots := s.Roots()
	if roots == nil {
		return ID{}, errors.New("verifying peer certificate: no trust bundle")
	}
	if len(rawCerts) == 0 {
		return ID{}, errors.New("verifying peer certificate: none presented")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return ID{}, fmt.Errorf("verifying peer certificate: parsing certificate %d: %w", i, err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return ID{}, fmt.Errorf("verifying peer certificate: %w", err)
	}
	id, err := CertificateID(certs[0])
	if err != nil && !errors.Is(err, ErrNoID) {
		return ID{}, fmt.Errorf("verifying peer certificate: %w", err)
	}
	return id, nil
}

// VerifyClient returns a tls.Config.VerifyPeerCertificate function for a
// server: a client certificate, when presented, must chain to the current
// trust bundle with client-auth usage. Whether one is required is the
// config's ClientAuth (RequireAnyClientCert or RequestClientCert).
func (s *Source) VerifyClient() func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return nil
		}
		_, err := s.Verify(rawCerts, x509.ExtKeyUsageClientAuth)
		return err
	}
}

// VerifyServer returns a tls.Config.VerifyPeerCertificate function for a
// client: the server's certificate must chain to the current trust bundle
// with server-auth usage and carry exactly the SPIFFE ID want. (Use it
// with InsecureSkipVerify, which turns off only the standard host-name
// verification that this replaces.)
func (s *Source) VerifyServer(want ID) func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		got, err := s.Verify(rawCerts, x509.ExtKeyUsageServerAuth)
		if err != nil {
			return err
		}
		if got != want {
			return &MismatchError{Want: want, Got: got}
		}
		return nil
	}
}

// MismatchError is a peer whose verified certificate carries another
// identity than the one expected.
type MismatchError struct{ Want, Got ID }

func (e *MismatchError) Error() string {
	got := e.Got.String()
	if got == "" {
		got = "no SPIFFE ID"
	}
	return fmt.Sprintf("peer identity %s, want %s", got, e.Want)
}
