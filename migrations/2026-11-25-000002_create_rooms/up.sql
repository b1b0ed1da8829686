-- Rooms and their members.
CREATE TABLE rooms (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_by  uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rooms_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT rooms_description_length CHECK (char_length(description) <= 1000),
    CONSTRAINT rooms_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id)
);

CREATE TABLE room_members (
    room_id   uuid        NOT NULL,
    user_id   uuid        NOT NULL,
    joined_at timestamptz NOT NULL DEFAULT now(),
    -- Members are listed in the order they joined; a sequence orders joins
    -- that share a timestamp (all initial members of a room do).
    join_seq  bigserial   NOT NULL,
    PRIMARY KEY (room_id, user_id),
    CONSTRAINT room_members_room_id_fkey
        FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE,
    CONSTRAINT room_members_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

-- A user's rooms (rooms_of_user, visible messages). The primary key serves
-- a room's members.
CREATE INDEX room_members_user_id_room_id_idx ON room_members (user_id, room_id);
