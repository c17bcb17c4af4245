package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// node is a JSON value with the byte offset where it starts, so semantic errors can point
// at the offending value. encoding/json alone keeps no positions.
type node struct {
	off    int
	kind   nodeKind
	str    string  // kindString: the decoded string
	fields []field // kindObject, in document order (duplicates kept)
	elems  []*node // kindArray
}

type field struct {
	key    string
	keyOff int
	val    *node
}

type nodeKind int

const (
	kindObject nodeKind = iota
	kindArray
	kindString
	kindScalar // number, true, false or null
)

func (k nodeKind) String() string {
	return [...]string{"an object", "an array", "a string", "a number, boolean or null"}[k]
}

// maxDepth bounds nesting; a policy needs four levels.
const maxDepth = 16

// posError is an error at a byte offset, turned into FILE:LINE:COL by the caller.
type posError struct {
	off int
	msg string
}

func (e *posError) Error() string { return e.msg }

func errAt(off int, format string, args ...any) error {
	return &posError{off: off, msg: fmt.Sprintf(format, args...)}
}

// parseTree parses data, which must hold exactly one JSON value.
func parseTree(data []byte) (*node, error) {
	// Unmarshal validates the whole document first and reports syntax errors with a
	// reliable offset (one past the bad byte); json.Decoder's offsets are not.
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off := int(se.Offset) - 1
			if strings.HasPrefix(se.Error(), "unexpected end") {
				off = len(data)
			}
			return nil, errAt(max(off, 0), "%s", se.Error())
		}
		return nil, errAt(0, "%s", err.Error())
	}
	t := &treeReader{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	t.dec.UseNumber()
	tok, off, err := t.next()
	if err != nil {
		return nil, err
	}
	return t.value(tok, off, 0)
}

type treeReader struct {
	data []byte
	dec  *json.Decoder
}

// next returns the next token and the offset where it starts. InputOffset is the end of
// the previous token; the separators and whitespace before this one are skipped here.
func (t *treeReader) next() (json.Token, int, error) {
	off := int(t.dec.InputOffset())
	for off < len(t.data) && strings.IndexByte(" \t\r\n,:", t.data[off]) >= 0 {
		off++
	}
	tok, err := t.dec.Token()
	if err != nil {
		// The document was validated already; this is not expected.
		return nil, off, errAt(off, "%s", err.Error())
	}
	return tok, off, nil
}

func (t *treeReader) value(tok json.Token, off, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, errAt(off, "nested too deeply")
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &node{off: off, kind: kindObject}
			for {
				tok, koff, err := t.next()
				if err != nil {
					return nil, err
				}
				if tok == json.Delim('}') {
					return n, nil
				}
				key, _ := tok.(string)
				tok, voff, err := t.next()
				if err != nil {
					return nil, err
				}
				val, err := t.value(tok, voff, depth+1)
				if err != nil {
					return nil, err
				}
				n.fields = append(n.fields, field{key: key, keyOff: koff, val: val})
			}
		case '[':
			n := &node{off: off, kind: kindArray}
			for {
				tok, eoff, err := t.next()
				if err != nil {
					return nil, err
				}
				if tok == json.Delim(']') {
					return n, nil
				}
				val, err := t.value(tok, eoff, depth+1)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, val)
			}
		}
		return nil, errAt(off, "unexpected %q", v.String())
	case string:
		return &node{off: off, kind: kindString, str: v}, nil
	default:
		return &node{off: off, kind: kindScalar}, nil
	}
}

// position turns a byte offset into a 1-based line and a 1-based column counted in bytes,
// as Go's own tools do.
func position(data []byte, off int) (line, col int) {
	off = min(off, len(data))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = off - bytes.LastIndexByte(before, '\n')
	return line, col
}
