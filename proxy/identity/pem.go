package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EncodeCertificates returns certs as concatenated PEM CERTIFICATE blocks.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// EncodeKey returns key as a PEM "PRIVATE KEY" (PKCS #8) block.
func EncodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ChainPEM returns the leaf followed by its chain, as a server or client
// certificate file holds them.
func (l *Leaf) ChainPEM() []byte {
	return EncodeCertificates(append([]*x509.Certificate{l.Cert}, l.Chain...)...)
}

// ParseCertificates decodes every CERTIFICATE block of data, in order.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return out, nil
}

// ParseKey decodes a PEM ECDSA private key (PKCS #8 or SEC 1).
func ParseKey(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key block found")
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS #8 key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("key is %T, not ECDSA", k)
			}
			return ek, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing EC key: %w", err)
			}
			return k, nil
		}
	}
}

// LoadCA reads a CA from a certificate file (the CA first, then any
// parents) and a key file.
func LoadCA(certFile, keyFile string) (*CA, error) {
	cdata, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	certs, err := ParseCertificates(cdata)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certFile, err)
	}
	kdata, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	key, err := ParseKey(kdata)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyFile, err)
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("CA key %s does not match certificate %s", keyFile, certFile)
	}
	if !certs[0].IsCA {
		return nil, fmt.Errorf("certificate %s is not a CA", certFile)
	}
	var parents []*x509.Certificate
	for _, c := range certs[1:] {
		if !isSelfSigned(c) {
			parents = append(parents, c)
		}
	}
	return &CA{Cert: certs[0], Key: key, Parents: parents}, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so a reader sees the old content or the new, never
// a part. The file gets mode perm (use 0600 for keys).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// WriteLeaf writes a leaf's chain to certFile (0644) and its key to keyFile
// (0600), atomically each. The key is written first, so a reader that
// sees the new certificate also finds its key.
func WriteLeaf(l *Leaf, certFile, keyFile string) error {
	kp, err := EncodeKey(l.Key)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(keyFile, kp, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(certFile, l.ChainPEM(), 0o644)
}
