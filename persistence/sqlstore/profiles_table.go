package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// profiles: a local user's global display name and avatar.

const insertProfileSQL = `
INSERT INTO profiles (localpart, display_name, avatar_url) VALUES ($1, '', '')
ON CONFLICT (localpart) DO NOTHING`

const selectProfileSQL = "SELECT display_name, avatar_url FROM profiles WHERE localpart = $1"

const updateDisplayNameSQL = "UPDATE profiles SET display_name = $2 WHERE localpart = $1"

const updateAvatarURLSQL = "UPDATE profiles SET avatar_url = $2 WHERE localpart = $1"

type profilesTable struct {
	insertProfile     *sql.Stmt
	selectProfile     *sql.Stmt
	updateDisplayName *sql.Stmt
	updateAvatarURL   *sql.Stmt
}

func prepareProfilesTable(p *preparer) *profilesTable {
	return &profilesTable{
		insertProfile:     p.prepare(insertProfileSQL),
		selectProfile:     p.prepare(selectProfileSQL),
		updateDisplayName: p.prepare(updateDisplayNameSQL),
		updateAvatarURL:   p.prepare(updateAvatarURLSQL),
	}
}

// InsertProfile creates an empty profile, keeping one that exists.
func (t *profilesTable) InsertProfile(ctx context.Context, tx *sql.Tx, localpart string) error {
	_, err := txStmt(ctx, tx, t.insertProfile).ExecContext(ctx, localpart)
	return err
}

// SelectProfile returns sql.ErrNoRows for an unknown localpart.
func (t *profilesTable) SelectProfile(ctx context.Context, localpart string) (persistence.Profile, error) {
	var p persistence.Profile
	err := t.selectProfile.QueryRowContext(ctx, localpart).Scan(&p.DisplayName, &p.AvatarURL)
	return p, err
}
