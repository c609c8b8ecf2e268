package store

// Contact registers an associated user (a family member, say) of a user:
// reminders that ask for it reach the contacts while the user is offline.
type Contact struct {
	AppID     int64  `gorm:"primaryKey;autoIncrement:false"`
	UserID    string `gorm:"primaryKey;size:191"`
	ContactID string `gorm:"primaryKey;size:191"`
}

// MessageStat counts, per occurrence, channel and state, the (message,
// channel, user) entries that reached that state. At most channels × states
// rows per occurrence.
type MessageStat struct {
	OccurrenceID int64  `gorm:"primaryKey;autoIncrement:false"`
	Channel      string `gorm:"primaryKey;size:16"`
	State        string `gorm:"primaryKey;size:16"`
	N            int64  `gorm:"not null"`
}
