"""schema.graphql is generated and checked in for client codegen: it must match the code."""

from __future__ import annotations

from api.schema import SDL_PATH, build_schema


def test_checked_in_sdl_matches_the_schema() -> None:
    current = build_schema().as_str() + "\n"
    assert SDL_PATH.exists(), "run `make schema` and commit schema.graphql"
    assert SDL_PATH.read_text() == current, "schema.graphql is stale: run `make schema` and commit it"


def test_the_contract_names_exist() -> None:
    schema = build_schema()
    sdl = schema.as_str()
    for name in ("me: User", "photos(", "searchPhotos(", "similarPhotos(", "nextDuel(",
                 "leaderboard(", "featured(", "uploadPhoto(", "acceptTags(", "rejectTags(", "voteDuel(",
                 "skipDuel(", "registerDevice(", "unregisterDevice(", "tagSuggestionsReady(", "notificationAdded"):
        assert name in sdl, name
    # photo(id: ID!): Photo, whose argument's description puts it on several SDL lines
    photo = schema._schema.type_map["Query"].fields["photo"]  # type: ignore[union-attr]
    assert (str(photo.type), str(photo.args["id"].type)) == ("Photo", "ID!")
