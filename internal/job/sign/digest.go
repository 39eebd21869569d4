package sign

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxDepth bounds the nesting of the JSON this package decodes: a job is a
// few levels deep, and the decoder recurses.
const maxDepth = 64

// ResultDigest computes, from a result's JSON as served, the hex SHA-256 of
// its canonical form and each returned file's hash.
//
// The canonical form is the result decoded with numbers kept as their text
// and re-encoded by encoding/json (sorted keys, no spaces), with every
// files[i].content (base64) replaced by the hex SHA-256 of its bytes: the
// statement lists the same hashes, so a file's content is signed once. Any
// spelling of the same JSON has the same digest; "null" or nothing is the
// digest of "null" with no files.
func ResultDigest(result []byte) (string, []FileHash, error) {
	var v any
	if len(bytes.TrimSpace(result)) > 0 {
		var err error
		if v, err = decodeJSON(result); err != nil {
			return "", nil, fmt.Errorf("result: %w", err)
		}
	}
	files, _, err := hashFiles(v)
	if err != nil {
		return "", nil, err
	}
	return digest(v), files, nil
}

// hashFiles replaces, in a decoded result, each files[i].content by the hex
// SHA-256 of its base64-decoded bytes. It returns the files' hashes and
// their objects.
func hashFiles(result any) ([]FileHash, []map[string]any, error) {
	if result == nil {
		return nil, nil, nil
	}
	obj, ok := result.(map[string]any)
	if !ok {
		return nil, nil, errors.New("result: not a JSON object")
	}
	list, ok := obj["files"].([]any)
	if !ok && obj["files"] != nil {
		return nil, nil, errors.New("result: files is not a list")
	}
	var hashes []FileHash
	var objs []map[string]any
	for i, f := range list {
		file, _ := f.(map[string]any)
		name, okName := file["name"].(string)
		content, okContent := file["content"].(string)
		if file == nil || !okName || (!okContent && file["content"] != nil) {
			return nil, nil, fmt.Errorf("result: files[%d] is not an object with a name and a base64 content", i)
		}
		// Strict: the padding bits must be zero, so that one file has one
		// base64 spelling and any change to the text is a change of bytes.
		data, err := base64.StdEncoding.Strict().DecodeString(content)
		if err != nil {
			return nil, nil, fmt.Errorf("result: files[%d].content: %w", i, err)
		}
		sum := sha256.Sum256(data)
		file["content"] = hex.EncodeToString(sum[:])
		hashes = append(hashes, FileHash{Name: name, SHA256: file["content"].(string)})
		objs = append(objs, file)
	}
	return hashes, objs, nil
}

// digest is the hex SHA-256 of v's canonical encoding.
func digest(v any) string {
	b, _ := json.Marshal(v) // decoded JSON values always encode
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// decodeJSON decodes one JSON value, keeping numbers as their text. It
// refuses an object with the same key twice: readers differ on which copy
// they keep, so another reader could see a value that was never signed.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := tok.(string)
			if !ok {
				return nil, errors.New("object key is not a string")
			}
			if _, dup := obj[key]; dup {
				return nil, fmt.Errorf("key %s appears twice in an object", jsonText(key))
			}
			if obj[key], err = decodeValue(dec, depth+1); err != nil {
				return nil, err
			}
		}
		_, err = dec.Token()
		return obj, err
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err = dec.Token()
		return list, err
	}
	return tok, nil
}
