package sqlstore

import (
	"context"
	"database/sql"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// The user directory's search of local users: accounts joined with their
// profiles, matched on the user ID and the display name. $1 is a LIKE
// pattern already lower-cased and escaped with '\', $2 the server name.

const searchLocalUsersSQL = `
SELECT a.localpart, p.display_name, p.avatar_url
FROM accounts a JOIN profiles p ON p.localpart = a.localpart
WHERE NOT a.deactivated AND a.localpart > $3
	AND (LOWER('@' || a.localpart || ':' || $2) LIKE $1 ESCAPE '\' OR LOWER(p.display_name) LIKE $1 ESCAPE '\')
ORDER BY a.localpart
LIMIT $4`

type userDirectoryQueries struct {
	searchLocalUsers *sql.Stmt
}

func prepareUserDirectoryQueries(p *preparer) *userDirectoryQueries {
	return &userDirectoryQueries{searchLocalUsers: p.prepare(searchLocalUsersSQL)}
}

// containsPattern is the LIKE pattern for "contains term", lower-cased.
func containsPattern(term string) string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(term))
	return "%" + esc + "%"
}

func (q *userDirectoryQueries) SearchLocalUsers(ctx context.Context, serverName, term, after string, limit int) ([]persistence.DirectoryUser, error) {
	rows, err := q.searchLocalUsers.QueryContext(ctx, containsPattern(term), serverName, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.DirectoryUser
	for rows.Next() {
		var u persistence.DirectoryUser
		if err := rows.Scan(&u.Localpart, &u.DisplayName, &u.AvatarURL); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
