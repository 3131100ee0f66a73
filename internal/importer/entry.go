// Package importer reads other password managers' exports into Safehold
// items, and writes the Bitwarden-compatible JSON export. Every parser is
// bounded, fuzzed, and never drops a value silently: what has no field of
// its own becomes a custom field, and what cannot be imported at all is
// listed in Skipped with the reason and where it was.
package importer

import "github.com/safehold/safehold/internal/item"

// Entry is one imported item: the item as Safehold stores it (no ID, no
// attachments: those are added after the item exists), the files attached
// to it, and its earlier versions, oldest first, for formats that keep
// history (KeePass).
type Entry struct {
	Item        item.Item
	Attachments []File
	History     []item.Item
	// Where names the entry in the source for messages ("line 12",
	// "entry 'GitHub' in group 'Work'").
	Where string
}

// File is an attachment's name and content.
type File struct {
	Name string
	Data []byte
}

// Skipped is an entry that could not be imported, and why.
type Skipped struct {
	Where  string `json:"where"`
	Reason string `json:"reason"`
}

// Result is what a parser found.
type Result struct {
	Entries []Entry
	Skipped []Skipped
}
